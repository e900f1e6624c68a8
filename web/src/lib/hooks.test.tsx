import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, render, screen } from '@testing-library/react';
import { useCountdown } from './hooks';

function Left({ at }: { at?: number }) {
  return <p>{useCountdown(at)}</p>;
}

describe('useCountdown', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('counts down each second to 0', () => {
    const at = Date.now() + 3000;
    render(<Left at={at} />);
    expect(screen.getByText('3')).toBeTruthy();
    act(() => void vi.advanceTimersByTime(1010));
    expect(screen.getByText('2')).toBeTruthy();
    act(() => void vi.advanceTimersByTime(2000));
    expect(screen.getByText('0')).toBeTruthy();
  });

  it('starts afresh for a new wait (no stale clock)', () => {
    const { rerender } = render(<Left at={Date.now() + 1000} />);
    act(() => void vi.advanceTimersByTime(600));
    // A second wait of 1.9 s shows 2 s, not 2.5 rounded up.
    rerender(<Left at={Date.now() + 1900} />);
    expect(screen.getByText('2')).toBeTruthy();
    act(() => void vi.advanceTimersByTime(1000));
    expect(screen.getByText('1')).toBeTruthy();
  });
});
