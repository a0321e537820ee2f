/// <reference lib="dom" />
import { useEffect, useRef, useState } from "preact/hooks";

/**
 * A slider that feels right on touch: a local draft while dragging, sent at most every 100 ms
 * and exactly on release; the engine's echo does not fight the finger; −/+ buttons step it.
 */
export function Slider(props: {
  label: string;
  value: number;
  min: number;
  max: number;
  step: number;
  /** Step of the −/+ buttons. */
  buttonStep?: number;
  unit?: string;
  format?: (v: number) => string;
  onChange: (v: number) => void;
}) {
  const [draft, setDraft] = useState<number | null>(null);
  // The value last sent, shown until the engine's echo says the same (or a second passes), so
  // the knob does not jump back to the old value between release and echo.
  const [sent, setSent] = useState<{ value: number; atMs: number } | null>(null);
  const lastSent = useRef(0);
  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(pending.current), []);
  const echoed = sent === null || props.value === sent.value ||
    performance.now() - sent.atMs > 1000;
  useEffect(() => {
    if (sent && echoed) setSent(null);
  }, [sent, echoed]);
  const value = draft ?? (echoed ? props.value : sent!.value);
  const clamp = (v: number) => Math.min(props.max, Math.max(props.min, v));
  const send = (v: number, now: boolean) => {
    clearTimeout(pending.current);
    const since = performance.now() - lastSent.current;
    if (now || since >= 100) {
      lastSent.current = performance.now();
      setSent({ value: v, atMs: lastSent.current });
      props.onChange(v);
    } else {
      pending.current = setTimeout(() => send(v, true), 100 - since);
    }
  };
  const shown = props.format ? props.format(value) : `${value}${props.unit ?? ""}`;
  const step = props.buttonStep ?? props.step;
  return (
    <div class="slider">
      <label>
        <span class="slider-label">{props.label}</span>
        <span class="slider-value">{shown}</span>
        <input
          type="range"
          aria-label={props.label}
          min={props.min}
          max={props.max}
          step={props.step}
          value={value}
          onInput={(e) => {
            const v = Number((e.currentTarget as HTMLInputElement).value);
            setDraft(v);
            send(v, false);
          }}
          onChange={(e) => {
            const v = Number((e.currentTarget as HTMLInputElement).value);
            send(v, true);
            setDraft(null);
          }}
        />
      </label>
      <button
        type="button"
        class="step"
        aria-label={`Decrease ${props.label.toLowerCase()}`}
        onClick={() => send(clamp(value - step), true)}
      >
        −
      </button>
      <button
        type="button"
        class="step"
        aria-label={`Increase ${props.label.toLowerCase()}`}
        onClick={() => send(clamp(value + step), true)}
      >
        +
      </button>
    </div>
  );
}
