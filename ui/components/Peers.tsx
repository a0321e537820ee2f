import type { Command } from "../../session/commands.ts";
import type { PeerInfo } from "../../session/protocol.ts";
import { ChannelSelect } from "./ChannelSelect.tsx";
import { percent } from "./format.ts";
import { StatusDot } from "./StatusDot.tsx";

/** A globe: the device joined from a web page, not the app. */
function BrowserTag() {
  return (
    <span class="tag tag-browser" title="Joined from a web browser">
      <svg width="11" height="11" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
        <g fill="none" stroke="currentColor" stroke-width="2.2">
          <circle cx="12" cy="12" r="9.5" />
          <path d="M2.5 12h19M12 2.5c-3.3 3.4-3.3 15.6 0 19M12 2.5c3.3 3.4 3.3 15.6 0 19" />
        </g>
      </svg>
      browser
    </span>
  );
}

function trackWord(state: string | undefined, progress: number | undefined): string {
  switch (state) {
    case undefined:
    case "none":
      return "—";
    case "downloading":
      return `downloading ${percent(progress ?? 0)}`;
    case "cached":
      return "downloaded";
    default:
      return state;
  }
}

/** The host's list of peers: clock, round trip, readiness, channel and delay. */
export function Peers(props: {
  peers: PeerInfo[];
  progress: Record<string, Record<string, number>>;
  currentId: string | null;
  nextId: string | null;
  send: (c: Command) => void;
}) {
  return (
    <section class="peers card" aria-label="Peers">
      <h2>
        Peers <span class="count">{props.peers.length}</span>
      </h2>
      {props.peers.length === 0 && (
        <p class="muted">
          No one has joined yet: apps on this network list the jam under Join Jam, phones scan the
          code below.
        </p>
      )}
      <ul>
        {props.peers.map((p) => {
          const prog = props.progress[p.name] ?? {};
          return (
            <li key={p.id} class="peer" aria-label={p.name}>
              <div class="peer-top">
                <span class="peer-name">
                  {p.name}
                  {p.client === "browser" && <BrowserTag />}
                </span>
                <StatusDot color={p.clock} />
              </div>
              <div class="peer-facts muted">
                <span title="Round trip to this peer">
                  {p.clock === "red" && p.rttMs === 0 ? "— ms" : `${p.rttMs.toFixed(1)} ms`}
                </span>
                <span title="Current track">
                  now: {trackWord(
                    p.track,
                    p.progress ?? (props.currentId ? prog[props.currentId] : undefined),
                  )}
                </span>
                {props.nextId && (
                  <span title="Next track">
                    next: {trackWord(p.next, p.nextProgress ?? prog[props.nextId])}
                  </span>
                )}
              </div>
              <div class="peer-facts muted">
                <label class="inline">
                  <span class="sr">Channel for {p.name}</span>
                  <ChannelSelect
                    label={`Channel for ${p.name}`}
                    value={p.channel}
                    onChange={(channel) => props.send({ cmd: "channel", peer: p.name, channel })}
                  />
                </label>
                <span title="Speaker delay">delay {p.speakerDelayMs} ms</span>
                {!p.audio.device && (
                  <span class="flag" title="This peer has no audio output">no audio</span>
                )}
              </div>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
