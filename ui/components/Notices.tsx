import { useEffect } from "preact/hooks";
import type { Command } from "../../session/commands.ts";
import { dismissNotice, type NoticesModel } from "../models/notices.ts";

/** How long a notice without buttons stays; errors and notices with buttons stay until closed. */
const NOTICE_MS = 8000;

/** Every notice and error, newest last. */
export function Notices(props: { model: NoticesModel; send: (c: Command) => void }) {
  const list = props.model.list.value;
  useEffect(() => {
    const timers = list
      .filter((n) => n.level !== "error" && !n.actions)
      .map((n) => setTimeout(() => dismissNotice(props.model, n.id), NOTICE_MS));
    return () => timers.forEach(clearTimeout);
  }, [list]);
  return (
    <section class="notices" aria-live="polite" aria-label="Notifications">
      {list.map((n) => (
        <div
          key={n.id}
          class={`notice notice-${n.level}`}
          role={n.level === "error" ? "alert" : "status"}
        >
          <span class="notice-text">{n.message}</span>
          {n.actions?.map((a) => (
            <button
              type="button"
              class="notice-action"
              onClick={() => {
                props.send(a.command);
                dismissNotice(props.model, n.id);
              }}
            >
              {a.label}
            </button>
          ))}
          <button
            type="button"
            class="notice-close"
            aria-label="Dismiss"
            onClick={() => dismissNotice(props.model, n.id)}
          >
            ×
          </button>
        </div>
      ))}
    </section>
  );
}
