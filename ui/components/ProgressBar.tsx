/// <reference lib="dom" />
import { useRef, useState } from "preact/hooks";
import { positionAt, type TransportState } from "../models/session.ts";
import { clockTime } from "./format.ts";
import { useFrame } from "./useFrame.ts";

/**
 * Elapsed / total and a bar, computed each frame from the transport's anchor. With `onSeek`
 * the bar is a slider: click or drag (the bar follows the pointer; the seek is sent on
 * release) and arrow keys.
 */
export function ProgressBar(props: {
  transport: TransportState;
  hostNowMs: () => number;
  onSeek?: (seconds: number) => void;
}) {
  const t = props.transport;
  useFrame(t.state === "playing");
  const bar = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<number | null>(null);
  const total = t.state === "stopped" ? 0 : t.durationSec;
  const pos = drag ?? positionAt(t, props.hostNowMs());
  const fraction = total > 0 ? Math.min(1, pos / total) : 0;
  const seekable = !!props.onSeek && total > 0;

  const at = (clientX: number) => {
    const r = bar.current!.getBoundingClientRect();
    return Math.max(0, Math.min(1, (clientX - r.left) / r.width)) * total;
  };
  return (
    <div class="progress">
      <span class="time" aria-label="Elapsed">{clockTime(pos)}</span>
      <div
        ref={bar}
        class={`bar${seekable ? " seekable" : ""}`}
        role="slider"
        aria-label="Position"
        aria-valuemin={0}
        aria-valuemax={Math.round(total)}
        aria-valuenow={Math.round(pos)}
        aria-valuetext={`${clockTime(pos)} of ${clockTime(total)}`}
        aria-readonly={!seekable}
        tabIndex={seekable ? 0 : -1}
        onPointerDown={seekable
          ? (e) => {
            (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
            setDrag(at(e.clientX));
          }
          : undefined}
        onPointerMove={(e) => drag !== null && setDrag(at(e.clientX))}
        onPointerUp={(e) => {
          if (drag === null) return;
          const to = at(e.clientX);
          setDrag(null);
          props.onSeek!(Math.min(to, total - 0.5));
        }}
        onPointerCancel={() => setDrag(null)}
      >
        <div class="fill" style={{ width: `${fraction * 100}%` }} />
        <div class="knob" style={{ left: `${fraction * 100}%` }} />
      </div>
      <span class="time" aria-label="Total">{clockTime(total)}</span>
    </div>
  );
}
