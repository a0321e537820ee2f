import type { Command } from "../../session/commands.ts";
import type { Models } from "../models/app.ts";
import { percent } from "./format.ts";
import { MyOutput } from "./MyOutput.tsx";
import { NowPlaying } from "./NowPlaying.tsx";
import { Queue } from "./Queue.tsx";
import { SessionHeader } from "./SessionHeader.tsx";
import { StatusDot } from "./StatusDot.tsx";
import { Uploads, type UploadsModel } from "./Uploads.tsx";

const REQUEST_WORDS: Record<string, string> = {
  sent: "sent",
  waiting: "waiting for the host",
  uploading: "sending",
  queued: "queued",
  rejected: "declined",
  refused: "refused",
  failed: "failed",
};

/** A peer's session: now playing and the queue (read-only), requests, its own sound. */
export function PeerScreen(props: {
  models: Models;
  send: (c: Command) => void;
  hostNowMs: () => number;
  pickFiles: () => void;
  uploads: UploadsModel;
  onHelp: () => void;
}) {
  const { session: s, queue: q, inbox } = props.models;
  const clock = s.clock.value;
  const t = s.transport.value;
  return (
    <div class="screen peer-screen">
      <SessionHeader
        session={s.session.value}
        leaveLabel="Leave"
        send={props.send}
        onHelp={props.onHelp}
      >
        Hosted by {s.hostName.value} · you are {s.myName.value} ·{" "}
        <span aria-label="Connection">
          {clock
            ? (
              <StatusDot
                color={clock.color}
                label={clock.locked ? "connected, in sync" : "connected, locking"}
              />
            )
            : "connected"}
          {clock && ` · latency ${(clock.rttMs / 2).toFixed(1)} ms`}
        </span>
      </SessionHeader>
      <div class="columns two">
        <div class="col centre">
          <NowPlaying
            transport={t}
            track={q.currentTrack.value}
            jamUrl={s.jamUrl.value}
            hostNowMs={props.hostNowMs}
          />
          <MyOutput session={s} send={props.send} />
        </div>
        <div class="col right">
          <Queue
            tracks={q.tracks.value}
            current={q.current.value}
            playingId={t.state === "playing" ? t.trackId : null}
          >
            <div class="queue-actions">
              <button
                type="button"
                class="primary"
                onClick={props.pickFiles}
                title="Request Song (Ctrl+O)"
              >
                Request Song
              </button>
            </div>
            <Uploads model={props.uploads} />
          </Queue>
          {inbox.mine.value.length > 0 && (
            <section class="card my-requests" aria-label="Your requests">
              <h2>Your requests</h2>
              <ul>
                {inbox.mine.value.map((r) => (
                  <li key={r.id} class={`my-request state-${r.state}`}>
                    <span class="request-title">{r.title || r.fileName}</span>
                    <span class="muted">
                      {REQUEST_WORDS[r.state] ?? r.state}
                      {r.state === "uploading" && r.progress !== undefined
                        ? ` ${percent(r.progress)}`
                        : ""}
                    </span>
                    {r.reason && <span class="muted small">{r.reason}</span>}
                  </li>
                ))}
              </ul>
            </section>
          )}
        </div>
      </div>
    </div>
  );
}
