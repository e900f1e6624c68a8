import { useEffect, useRef, useState } from 'react';

export function useDocumentTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Parley` : 'Parley';
  }, [title]);
}

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/**
 * Seconds left until a time (ms since epoch), rounded up; 0 when passed. It re-renders as
 * each whole second passes, and starts afresh whenever the time changes (a new wait).
 */
export function useCountdown(at: number | undefined): number {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!at) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const schedule = () => {
      const left = at - Date.now();
      if (left <= 0) return;
      // Wake just after the shown number changes.
      timer = setTimeout(() => {
        setTick((n) => n + 1);
        schedule();
      }, (left % 1000) + 5);
    };
    schedule();
    return () => clearTimeout(timer);
  }, [at]);
  return at ? Math.max(0, Math.ceil((at - Date.now()) / 1000)) : 0;
}

/**
 * A ref for a <details> menu that closes on Escape (focus back on its summary) or on a
 * click outside it.
 */
export function useDismiss() {
  const ref = useRef<HTMLDetailsElement>(null);
  useEffect(() => {
    const close = (e: Event) => {
      const d = ref.current;
      if (!d?.open) return;
      if (e instanceof KeyboardEvent) {
        if (e.key !== 'Escape') return;
        d.open = false;
        d.querySelector('summary')?.focus();
      } else if (!d.contains(e.target as Node)) d.open = false;
    };
    document.addEventListener('mousedown', close);
    document.addEventListener('keydown', close);
    return () => {
      document.removeEventListener('mousedown', close);
      document.removeEventListener('keydown', close);
    };
  }, []);
  return ref;
}
