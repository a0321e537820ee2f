/// <reference lib="dom" />
import { useEffect, useRef } from "preact/hooks";

/** The keyboard shortcuts, shown with "?". */
export const SHORTCUTS: [string, string][] = [
  ["Space", "Play / pause (host)"],
  ["← / →", "Seek 5 s back / forward (host)"],
  ["N", "Skip to the next track (host)"],
  ["K", "Calibrate every speaker delay by the microphone (host)"],
  ["M", "Mute / unmute this device"],
  ["Ctrl+O", "Add a song (host) / request a song (peer)"],
  ["Alt+↑ / Alt+↓", "Move the focused queue track (host)"],
  ["?", "Show or hide this list"],
];

export function HelpOverlay(props: { onClose: () => void }) {
  const close = useRef<HTMLButtonElement>(null);
  // A dialog takes the focus (so keys go to it, not to the control behind) and gives it back.
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    close.current?.focus();
    return () => before?.focus?.();
  }, []);
  return (
    <div
      class="overlay"
      role="dialog"
      aria-modal="true"
      aria-label="Keyboard shortcuts"
      onClick={props.onClose}
    >
      <div class="overlay-card" onClick={(e) => e.stopPropagation()}>
        <h2>Keyboard shortcuts</h2>
        <dl class="shortcuts">
          {SHORTCUTS.map(([k, what]) => (
            <>
              <dt>
                <kbd>{k}</kbd>
              </dt>
              <dd>{what}</dd>
            </>
          ))}
        </dl>
        <button ref={close} type="button" class="primary" onClick={props.onClose}>Close</button>
      </div>
    </div>
  );
}
