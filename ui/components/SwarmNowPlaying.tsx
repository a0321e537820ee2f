/// <reference lib="dom" />
import { useMemo } from "preact/hooks";
import type { SwarmActions, SwarmView } from "../../swarm/view.ts";
import type { TransportState } from "../models/session.ts";
import { percent } from "./format.ts";
import { Icon } from "./Icon.tsx";
import { ProgressBar } from "./ProgressBar.tsx";

/** "Waiting for 2 members: Alex 40 %, Sam 0 %". */
export function waitingSentence(waiting: SwarmView["waitingFor"]): string {
  const n = waiting.length;
  return `Waiting for ${n} member${n === 1 ? "" : "s"}: ` +
    waiting.map((w) => `${w.name} ${percent(w.progress)}`).join(", ");
}

/** Why the director may not press Play, or null. */
export function playBlocker(v: SwarmView): string | null {
  if (v.transport.file) return null;
  return v.files.length === 0
    ? "Nothing to play yet: share a file first."
    : "Select a file first: press Select beside it.";
}

const local = () => performance.now();

/**
 * The director's selected file, live position and length; then who directs: the director's
 * Play, Stop and Resign (and Start now while members are still fetching), or Take control.
 */
export function SwarmNowPlaying(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const a = props.actions;
  const t = v.transport;
  const file = v.files.find((f) => f.id === t.file) ?? null;
  const duration = t.durationSec ?? file?.durationSec ?? 0;
  // The view's position is where the music was when the engine published it: the bar goes on
  // from there by this device's clock until the next view.
  const seenAtMs = useMemo(local, [t.file, t.playing, t.positionSec]);
  const transport: TransportState = t.file
    ? {
      state: t.playing ? "playing" : "paused",
      trackId: t.file,
      title: file?.name ?? "",
      artist: "",
      durationSec: duration,
      positionSec: t.positionSec,
      atHostMs: seenAtMs,
    }
    : { state: "stopped" };
  const director = v.members.find((m) => m.id === v.director) ?? null;
  const blocker = playBlocker(v);
  return (
    <section class="now card swarm-now" aria-label="Now playing">
      <div class="cover" aria-hidden="true">
        <span class="cover-note">♪</span>
      </div>
      <div class="now-text">
        <p class="now-state muted">
          {t.playing ? "Now playing" : t.file ? "Selected" : "Nothing selected"}
        </p>
        <h2 class="now-title">
          {file?.name ?? (t.file ? "A file this device does not list yet" : "No file selected")}
        </h2>
      </div>
      <ProgressBar transport={transport} hostNowMs={local} />
      <div class="swarm-director" role="group" aria-label="Director">
        {v.iAmDirector
          ? (
            <>
              <p class="swarm-who">You direct</p>
              <div class="swarm-transport">
                <button
                  type="button"
                  class="primary"
                  disabled={!!blocker}
                  aria-describedby={blocker ? "swarm-play-why" : undefined}
                  title="Play from the start (Space)"
                  onClick={() => a.play()}
                >
                  <Icon name="play" size={18} />
                  <span>Play</span>
                </button>
                <button
                  type="button"
                  disabled={!t.playing && v.waitingFor.length === 0}
                  title="Stop (Space)"
                  onClick={() => a.stop()}
                >
                  <Icon name="stop" size={16} />
                  <span>Stop</span>
                </button>
                <button
                  type="button"
                  class="secondary"
                  title="Let the next member direct"
                  onClick={() => a.resign()}
                >
                  Resign
                </button>
              </div>
              {blocker && <p id="swarm-play-why" class="muted small swarm-why">{blocker}</p>}
              {v.waitingFor.length > 0 && (
                <div class="swarm-waiting">
                  <p>{waitingSentence(v.waitingFor)}</p>
                  <button type="button" class="primary" onClick={() => a.startNow()}>
                    Start now
                  </button>
                </div>
              )}
            </>
          )
          : (
            <>
              <p class="swarm-who">
                {director ? `Directed by ${director.name}` : "No one directs right now"}
              </p>
              <div class="swarm-transport">
                <button type="button" class="secondary" onClick={() => a.takeControl()}>
                  Take control
                </button>
              </div>
            </>
          )}
      </div>
    </section>
  );
}
