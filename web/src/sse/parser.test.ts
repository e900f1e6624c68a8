import { describe, expect, it } from 'vitest';
import { SSEParser } from './parser';

describe('SSEParser', () => {
  it('parses events with ids, names and data', () => {
    const p = new SSEParser();
    const evs = p.push('id: 1\nevent: delta\ndata: {"seq":1,"text":"Hel"}\n\nid: 2\nevent: delta\ndata: {"seq":2,"text":"lo"}\n\n');
    expect(evs).toEqual([
      { event: 'delta', id: '1', data: '{"seq":1,"text":"Hel"}' },
      { event: 'delta', id: '2', data: '{"seq":2,"text":"lo"}' },
    ]);
    expect(p.lastEventId).toBe('2');
  });

  it('handles chunks split anywhere, CRLF and CR line ends', () => {
    const text = 'id: 7\r\nevent: waiting\r\ndata: {"reason":"queued"}\r\n\r\nid: 8\revent: reset\rdata: {"seq":8}\r\r';
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SSEParser();
      const evs = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(evs.map((e) => [e.id, e.event, e.data])).toEqual([
        ['7', 'waiting', '{"reason":"queued"}'],
        ['8', 'reset', '{"seq":8}'],
      ]);
    }
  });

  it('ignores comments (keepalives) and unknown fields, joins multi-line data', () => {
    const p = new SSEParser();
    const evs = p.push(': keepalive\n\nfoo: bar\ndata: a\ndata: b\n\n');
    expect(evs).toEqual([{ event: 'message', id: '', data: 'a\nb' }]);
  });

  it('keeps the last id across events and from a resume point', () => {
    const p = new SSEParser('41');
    expect(p.lastEventId).toBe('41');
    const evs = p.push('event: delta\ndata: {"text":"x"}\n\n');
    expect(evs[0].id).toBe('41');
  });

  it('strips a leading BOM and does not dispatch an event without data', () => {
    const p = new SSEParser();
    expect(p.push('\uFEFFevent: done\n\n')).toEqual([]);
    expect(p.push('data: 1\n\n')).toEqual([{ event: 'message', id: '', data: '1' }]);
  });
});
