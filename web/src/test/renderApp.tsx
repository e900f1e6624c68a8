import { render } from '@testing-library/react';
import { MemoryRouter, useLocation } from 'react-router';
import { App } from '../App';

export const location = { current: '' };

function LocationSpy() {
  const l = useLocation();
  location.current = l.pathname + l.search;
  return null;
}

export function renderApp(path: string) {
  return render(
    <MemoryRouter initialEntries={[path]}>
      <LocationSpy />
      <App />
    </MemoryRouter>,
  );
}

export const user = { id: 'u1', username: 'ada', email: 'ada@example.com', firstname: 'Ada', lastname: 'Lovelace', created_at: '2026-01-01T00:00:00Z' };
export const chat = { id: 'c1', title: 'About engines', model: 'demo', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-02T00:00:00Z' };
export const modelsList = {
  models: [
    { id: 'demo', name: 'Demo model', provider: 'demo', default: true },
    { id: 'big', name: 'Big model', provider: 'huggingface', default: false },
  ],
};
