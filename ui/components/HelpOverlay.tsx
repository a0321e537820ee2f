/** The keyboard shortcuts, shown with "?". */
export const SHORTCUTS: [string, string][] = [
  ["Space", "Play / pause (host)"],
  ["← / →", "Seek 5 s back / forward (host)"],
  ["N", "Skip to the next track (host)"],
  ["M", "Mute / unmute this device"],
  ["Ctrl+O", "Add a song (host) / request a song (peer)"],
  ["Alt+↑ / Alt+↓", "Move the focused queue track (host)"],
  ["?", "Show or hide this list"],
];

export function HelpOverlay(props: { onClose: () => void }) {
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
        <button type="button" class="primary" onClick={props.onClose} autofocus>Close</button>
      </div>
    </div>
  );
}
