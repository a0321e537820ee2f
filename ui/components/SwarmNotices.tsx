import { useEffect, useRef } from "preact/hooks";
import type { SwarmView } from "../../swarm/view.ts";

/** How long an info or warning stays; errors stay until dismissed. */
const NOTICE_MS = 8000;

/** The engine's notices, newest last, with the look of the jam's Notices. */
export function SwarmNotices(props: {
  notices: SwarmView["notices"];
  dismiss: (id: number) => void;
}) {
  const list = props.notices;
  const dismiss = useRef(props.dismiss);
  dismiss.current = props.dismiss;
  // One timer per notice, from when it appeared: a newer notice does not restart the others'.
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
      if (n.level === "error" || timers.current.has(n.id)) continue;
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
