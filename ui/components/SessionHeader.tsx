import type { ComponentChildren } from "preact";
import type { Command } from "../../session/commands.ts";

/** A session screen's header: the session's name, a line about it, shortcuts, and the way out. */
export function SessionHeader(props: {
  session: string;
  /** "End Jam" for the host, "Leave" for a peer. */
  leaveLabel: string;
  send: (c: Command) => void;
  onHelp: () => void;
  children: ComponentChildren;
}) {
  return (
    <header class="top">
      <div>
        <h1 class="session-name">{props.session}</h1>
        <p class="muted">{props.children}</p>
      </div>
      <div class="top-actions">
        <button
          type="button"
          class="icon"
          aria-label="Keyboard shortcuts"
          title="Keyboard shortcuts (?)"
          onClick={props.onHelp}
        >
          ?
        </button>
        <button type="button" class="secondary" onClick={() => props.send({ cmd: "leave" })}>
          {props.leaveLabel}
        </button>
      </div>
    </header>
  );
}
