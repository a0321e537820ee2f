import type { Command } from "../../session/commands.ts";
import type { InboxItem } from "../models/inbox.ts";

/** The host's bottom drawer: song requests with Accept ✓ / Reject ✗. */
export function Requests(props: { requests: InboxItem[]; send: (c: Command) => void }) {
  const open = props.requests.length > 0;
  return (
    <section class={`drawer${open ? " open" : ""}`} aria-label="Song requests">
      <h2>
        Song requests <span class="count">{props.requests.length}</span>
      </h2>
      {!open && <p class="muted">Peers can send you songs with Request Song.</p>}
      <ul>
        {props.requests.map((r) => (
          <li key={r.id} class="request">
            <span class="request-peer">{r.peer}</span>
            <span class="request-file" title={r.fileName}>{r.fileName}</span>
            <span class="request-title">{r.title}{r.artist ? ` — ${r.artist}` : ""}</span>
            {r.state === "uploading" ? <span class="muted">receiving…</span> : (
              <>
                <button
                  type="button"
                  class="accept"
                  aria-label={`Accept ${r.title}`}
                  title="Accept"
                  onClick={() => props.send({ cmd: "accept", id: r.id })}
                >
                  ✓ Accept
                </button>
                <button
                  type="button"
                  class="reject"
                  aria-label={`Reject ${r.title}`}
                  title="Reject"
                  onClick={() => props.send({ cmd: "reject", id: r.id })}
                >
                  ✗ Reject
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
