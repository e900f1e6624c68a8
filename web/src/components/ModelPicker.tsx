import { useId } from 'react';
import type { Model } from '../api/types';

/** The "Model" select, used for new chats and for the open chat. */
export function ModelPicker({
  models,
  value,
  onChange,
  disabled,
}: {
  models: Model[];
  value: string;
  onChange: (id: string) => void;
  disabled?: boolean;
}) {
  const id = useId();
  const known = models.some((m) => m.id === value);
  return (
    <div className="model-picker">
      <label htmlFor={id}>Model</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} disabled={disabled || models.length === 0}>
        {!known && value && <option value={value}>{value} (unavailable)</option>}
        {models.length === 0 && !value && <option value="">Loading models…</option>}
        {models.map((m) => (
          <option key={m.id} value={m.id}>
            {m.name || m.id}
            {m.default ? ' (default)' : ''}
          </option>
        ))}
      </select>
    </div>
  );
}
