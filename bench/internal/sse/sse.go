// Package sse reads server-sent event streams: the gateway's answer streams and the
// provider's OpenAI-style chunk streams.
package sse

import (
	"bufio"
	"bytes"
	"io"
)

// Event is one event: its id, type ("message" when the stream names none) and data
// (several data lines joined with "\n").
type Event struct {
	ID, Type string
	Data     []byte
}

// Reader reads events one by one. Comments and unknown fields are skipped.
type Reader struct {
	r *bufio.Reader
}

// NewReader reads events from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 16<<10)} }

// Next returns the next event; io.EOF when the stream ended cleanly between events.
func (r *Reader) Next() (Event, error) {
	var ev Event
	seen := false
	for {
		line, err := r.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather the rest of it.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = r.r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if err == io.EOF && seen {
				return ev, io.ErrUnexpectedEOF
			}
			return ev, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if !seen {
				continue
			}
			if ev.Type == "" {
				ev.Type = "message"
			}
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "event":
			ev.Type, seen = string(value), true
		case "id":
			ev.ID, seen = string(value), true
		case "data":
			if ev.Data != nil {
				ev.Data = append(ev.Data, '\n')
			}
			ev.Data, seen = append(ev.Data, value...), true
			if ev.Data == nil {
				ev.Data = []byte{}
			}
		}
	}
}
