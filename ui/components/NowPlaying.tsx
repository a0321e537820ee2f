import type { Command } from "../../session/commands.ts";
import type { TrackInfo } from "../../session/protocol.ts";
import type { TransportState } from "../models/session.ts";
import { Icon } from "./Icon.tsx";
import { ProgressBar } from "./ProgressBar.tsx";

/** Cover, title, artist, live progress; with `send`, the host's transport controls. */
export function NowPlaying(props: {
  transport: TransportState;
  track: TrackInfo | null;
  jamUrl: string;
  hostNowMs: () => number;
  /** Host only. */
  send?: (c: Command) => void;
  canPlay?: boolean;
  waitingFor?: string;
}) {
  const t = props.transport;
  const track = props.track;
  const title = t.state !== "stopped" ? t.title : track?.title ?? "";
  const artist = t.state !== "stopped" ? t.artist : track?.artist ?? "";
  const cover = track?.cover && props.jamUrl ? `${props.jamUrl}/covers/${track.id}` : null;
  const send = props.send;
  const playing = t.state === "playing";
  return (
    <section class="now card" aria-label="Now playing">
      <div class="cover" aria-hidden={!cover}>
        {cover ? <img src={cover} alt={`Cover of ${title}`} /> : <span class="cover-note">♪</span>}
      </div>
      <div class="now-text">
        <p class="now-state muted">
          {playing
            ? "Now playing"
            : t.state === "paused"
            ? "Paused"
            : track
            ? "Ready to play"
            : "Nothing queued"}
        </p>
        <h2 class="now-title">
          {title || (send ? "Add a song to start" : "Waiting for the host")}
        </h2>
        <p class="now-artist muted">{artist}</p>
      </div>
      <ProgressBar
        transport={t.state === "stopped" && track
          ? {
            state: "paused",
            trackId: track.id,
            title: track.title,
            artist: track.artist,
            durationSec: track.durationSec,
            positionSec: 0,
            atHostMs: 0,
          }
          : t}
        hostNowMs={props.hostNowMs}
        onSeek={send && track
          ? (s) => send({ cmd: "seek", seconds: Math.round(s * 10) / 10 })
          : undefined}
      />
      {send && (
        <div class="transport" role="group" aria-label="Transport">
          <button
            type="button"
            class="round"
            aria-label="Stop"
            title="Stop"
            onClick={() => send({ cmd: "stop" })}
            disabled={t.state === "stopped"}
          >
            <Icon name="stop" size={16} />
          </button>
          {playing
            ? (
              <button
                type="button"
                class="round big-round"
                aria-label="Pause"
                title="Pause (Space)"
                onClick={() => send({ cmd: "pause" })}
              >
                <Icon name="pause" size={26} />
              </button>
            )
            : (
              <button
                type="button"
                class="round big-round primary"
                aria-label="Play"
                title={props.canPlay ? "Play (Space)" : props.waitingFor ?? "Nothing to play"}
                onClick={() => send({ cmd: "play" })}
                disabled={!props.canPlay}
              >
                <Icon name="play" size={28} />
              </button>
            )}
          <button
            type="button"
            class="round"
            aria-label="Skip"
            title="Skip (N)"
            onClick={() => send({ cmd: "skip" })}
            disabled={!track}
          >
            <Icon name="skip" size={18} />
          </button>
        </div>
      )}
      {send && !props.canPlay && props.waitingFor && <p class="muted waiting">{props.waitingFor}
      </p>}
    </section>
  );
}
