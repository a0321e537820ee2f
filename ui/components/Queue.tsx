/// <reference lib="dom" />
import { useRef, useState } from "preact/hooks";
import type { Command } from "../../session/commands.ts";
import type { TrackInfo } from "../../session/protocol.ts";
import { clockTime } from "./format.ts";

/**
 * The queue. For the host: reorder by dragging the handle (pointer events, so touch works too)
 * or with Alt+↑/↓ on a focused track, and remove a track. For peers it is read-only.
 */
export function Queue(props: {
  tracks: TrackInfo[];
  current: number;
  playingId: string | null;
  send?: (c: Command) => void;
  children?: preact.ComponentChildren;
}) {
  const list = useRef<HTMLOListElement>(null);
  const [drag, setDrag] = useState<{ from: number; to: number; dy: number; startY: number } | null>(
    null,
  );
  const editable = !!props.send;

  const targetAt = (clientY: number, from: number) => {
    const rows = [...(list.current?.children ?? [])] as HTMLElement[];
    let to = from;
    rows.forEach((r, i) => {
      const b = r.getBoundingClientRect();
      const mid = b.top + b.height / 2;
      if (i < from && clientY < mid) to = Math.min(to, i);
      if (i > from && clientY > mid) to = Math.max(to, i);
    });
    return to;
  };
  const move = (from: number, to: number) => {
    if (to < 0 || to >= props.tracks.length || to === from) return;
    props.send!({ cmd: "move", from: from + 1, to: to + 1 });
  };

  return (
    <section class="queue card" aria-label="Queue">
      <div class="queue-head">
        <h2>
          Queue <span class="count">{props.tracks.length}</span>
        </h2>
        {props.children}
      </div>
      {props.tracks.length === 0 && (
        <p class="muted">
          {editable
            ? "Add MP3s with Add Song, or drop them on the window."
            : "The host has not queued anything yet."}
        </p>
      )}
      <ol ref={list} class="queue-list">
        {props.tracks.map((t, i) => {
          const mark = i === props.current
            ? (props.playingId === t.id ? "playing" : "current")
            : i === props.current + 1
            ? "next"
            : "";
          const dragging = drag?.from === i;
          const shift = drag && !dragging
            ? (drag.from < i && i <= drag.to ? -1 : drag.to <= i && i < drag.from ? 1 : 0)
            : 0;
          return (
            <li
              key={t.id}
              class={`track ${mark}${dragging ? " dragging" : ""}`}
              style={dragging
                ? { transform: `translateY(${drag!.dy}px)` }
                : shift
                ? { transform: `translateY(${shift * 100}%)` }
                : undefined}
              tabIndex={editable ? 0 : -1}
              aria-label={`${i + 1}. ${t.title}${
                mark === "playing" ? ", playing" : mark === "next" ? ", next" : ""
              }`}
              onKeyDown={editable
                ? (e) => {
                  if (!e.altKey) return;
                  if (e.key === "ArrowUp") move(i, i - 1);
                  else if (e.key === "ArrowDown") move(i, i + 1);
                  else return;
                  e.preventDefault();
                }
                : undefined}
            >
              {editable && (
                <span
                  class="handle"
                  role="button"
                  aria-label={`Drag to reorder ${t.title}`}
                  title="Drag to reorder (or Alt+↑/↓)"
                  onPointerDown={(e) => {
                    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
                    setDrag({ from: i, to: i, dy: 0, startY: e.clientY });
                  }}
                  onPointerMove={(e) => {
                    if (!drag) return;
                    setDrag({
                      ...drag,
                      dy: e.clientY - drag.startY,
                      to: targetAt(e.clientY, drag.from),
                    });
                  }}
                  onPointerUp={() => {
                    if (drag) move(drag.from, drag.to);
                    setDrag(null);
                  }}
                  onPointerCancel={() => setDrag(null)}
                >
                  ⠿
                </span>
              )}
              <span class="track-pos muted">{i + 1}</span>
              <span class="track-text">
                <span class="track-title">{t.title}</span>
                <span class="track-artist muted">{t.artist || t.fileName}</span>
              </span>
              {mark && (
                <span class={`badge badge-${mark}`}>{mark === "current" ? "up now" : mark}</span>
              )}
              <span class="track-dur muted">{clockTime(t.durationSec)}</span>
              {editable && (
                <button
                  type="button"
                  class="icon"
                  aria-label={`Remove ${t.title}`}
                  title="Remove"
                  disabled={mark === "playing"}
                  onClick={() => props.send!({ cmd: "remove", position: i + 1 })}
                >
                  ×
                </button>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}
