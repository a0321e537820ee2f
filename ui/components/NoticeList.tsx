import { useEffect, useRef } from "preact/hooks";

/** How long a notice without buttons stays; errors and notices with buttons stay until closed. */
export const NOTICE_MS = 8000;

/** One notice as shown: its words, and the buttons that act on it (each also dismisses it). */
export interface NoticeItem {
  id: number;
  level: "info" | "warn" | "error";
  text: string;
  actions?: { label: string; run: () => void }[];
}

/**
 * Notices, newest last, for a jam and a swarm alike. Each one that may go by itself has its own
 * timer from when it appeared: a newer notice does not restart the others'.
 */
export function NoticeList(props: { notices: NoticeItem[]; dismiss: (id: number) => void }) {
  const list = props.notices;
  const dismiss = useRef(props.dismiss);
  dismiss.current = props.dismiss;
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  const ids = list.map((n) => n.id).join(",");
  useEffect(() => {
    const shown = new Set(list.map((n) => n.id));
    for (const [id, t] of timers.current) {
      if (shown.has(id)) continue;
      clearTimeout(t);
      timers.current.delete(id);
    }
    for (const n of list) {
      if (n.level === "error" || n.actions?.length || timers.current.has(n.id)) continue;
      timers.current.set(n.id, setTimeout(() => dismiss.current(n.id), NOTICE_MS));
    }
  }, [ids]);
  useEffect(() => () => timers.current.forEach(clearTimeout), []);
  return (
    <section class="notices" aria-live="polite" aria-label="Notifications">
      {list.map((n) => (
        <div
          key={n.id}
          class={`notice notice-${n.level}`}
          role={n.level === "error" ? "alert" : "status"}
        >
          <span class="notice-text">{n.text}</span>
          {n.actions?.map((a) => (
            <button
              type="button"
              class="notice-action"
              onClick={() => {
                a.run();
                props.dismiss(n.id);
              }}
            >
              {a.label}
            </button>
          ))}
          <button
            type="button"
            class="notice-close"
            aria-label="Dismiss"
            onClick={() => props.dismiss(n.id)}
          >
            ×
          </button>
        </div>
      ))}
    </section>
  );
}
