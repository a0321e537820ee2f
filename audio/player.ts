import { type HostMap, localToHost } from "../net/local_clock.ts";
import { chirpAt, PROBE } from "./arrival.ts";
import { DriftController, type DriftLimits } from "./drift.ts";

/**
 * Decides what every output frame contains. Pure: the write loop asks it to render the block
 * of stream frames [frame, frame + n) and tells it when each of those frames will be heard, in
 * host time; no timers are involved anywhere.
 *
 * Placement: a `play` schedule says "track frame P is heard at host time T", so output frame
 * heard at host time h carries track frame P + (h − T)·rate. The track is read at a fractional
 * position with cubic interpolation, which both resamples (44.1 kHz files on a 48 kHz device)
 * and lets drift correction nudge the rate by a few hundred ppm without an audible step.
 *
 * Samples are float32 (−1…1) or int16 (read as value/32768); every device keeps int16, half the
 * memory: a 10-minute stereo track is 115 MB instead of 230. A native device keeps long tracks on
 * disk and hands the player windows of them (./track_windows.ts, {@link Player.setWindow}).
 */

/** What a device plays of a stereo track: both channels, one of them on both, or a mix. */
export const CHANNEL_MODES = ["stereo", "left", "right", "mono"] as const;
export type ChannelMode = typeof CHANNEL_MODES[number];

/** One channel of a track: float32 samples, or int16 samples scaled by 1/32768 when read. */
export type Samples = Float32Array | Int16Array;

/** A decoded track; both channels hold the same sample type. */
export interface Pcm<S extends Samples = Samples> {
  id: string;
  rateHz: number;
  left: S;
  right: S;
}

/** Frames `[offset, offset + left.length)` of a long track (the rest on disk: ./track_windows.ts). */
export interface TrackWindow {
  offset: number;
  left: Samples;
  right: Samples;
}

/** A loaded track and the factor that turns its samples into −1…1 (1 for float tracks). */
interface Track {
  id: string;
  rateHz: number;
  scale: number;
  frames: number;
  /** The whole track, or null once it plays from windows. */
  pcm: Pcm | null;
  /** The whole track as a {@link Source}. */
  whole: Source;
  /** The parts held of a windowed track; frames outside them play as silence. */
  windows: (TrackWindow | undefined)[];
}

export type Schedule =
  | { kind: "play"; atHostMs: number; trackId: string; fromFrame: number }
  | { kind: "silence"; atHostMs: number };

export type PlayerEvent =
  | { type: "started"; trackId: string; fromFrame: number; atHostMs: number }
  | { type: "ended"; trackId: string; atHostMs: number }
  | { type: "resync"; trackId: string; errorMs: number }
  | { type: "missing"; trackId: string };

const FADE_FRAMES = 96; // 2 ms at 48 kHz: long enough to avoid a click, short enough to be "now"

/**
 * The click test's tick: a 2 kHz burst of 5 ms starting on every whole host second, peaking at
 * −12 dBFS. Short and bright so that two devices a few ms apart are heard as two ticks.
 */
export const CLICK_MS = 5;
export const CLICK_HZ = 2000;
export const CLICK_PEAK = 0.25;
/** Attack of the tick's envelope (ms): a fast rise, then a quadratic fall to 0 at CLICK_MS. */
const CLICK_ATTACK_MS = 0.1;

/**
 * The tick's value `tMs` after a whole host second (0 outside [0, CLICK_MS)). A function of host
 * time, not of frames: a tick is placed to the fraction of a frame, like a track's frames are.
 */
export function clickAt(tMs: number): number {
  if (tMs < 0 || tMs >= CLICK_MS) return 0;
  const fall = 1 - tMs / CLICK_MS;
  const env = Math.min(1, tMs / CLICK_ATTACK_MS) * fall * fall;
  return CLICK_PEAK * env * Math.sin((2 * Math.PI * CLICK_HZ * tMs) / 1000);
}

export interface PlayerStats {
  /** Last measured placement error (ms, positive = ahead). */
  errorMs: number;
  /** Current rate nudge, ppm. */
  nudgePpm: number;
  resyncs: number;
  /** Frames of a windowed track played as silence, its window not loaded there (see wants()). */
  missedFrames: number;
}

export class Player {
  #tracks = new Map<string, Track>();
  #queue: Schedule[] = [];
  #current: Extract<Schedule, { kind: "play" }> | null = null;
  #pos: number | null = null;
  /** Frames of fade-in done; FADE_FRAMES means none pending. */
  #fadeIn = FADE_FRAMES;
  #fadeOut = 0;
  #fadeOutPos = 0;
  #gain = 1;
  #targetGain = 1;
  #endedReported = false;
  #channel: ChannelMode = "stereo";
  /** A play whose track was not loaded yet (joining mid-song): starts once it is. */
  #awaiting: Extract<Schedule, { kind: "play" }> | null = null;
  #realign = false;
  #clicks = false;
  /** Host times at which calibration probes start (removed once played). */
  #probes: number[] = [];
  /** Frames of a windowed track played as silence: in no window loaded. */
  #missed = 0;
  /** Where the playing track is read from, for the frames from `#srcFrom` to `#srcTo`. */
  #src: Source = NO_SOURCE;
  #srcTrack: Track | null = null;
  #srcFrom = 0;
  #srcTo = -1;
  readonly #drift: DriftController;
  events: PlayerEvent[] = [];

  /** `drift`: the controller's limits (a browser's output moves more than a sound card's). */
  constructor(readonly outRateHz: number, drift?: DriftLimits) {
    this.#drift = new DriftController(drift);
  }

  /** Adds a track; its channels must be of one sample type (TypeError otherwise). */
  addTrack(pcm: Pcm): void {
    const int16 = pcm.left instanceof Int16Array;
    if (int16 !== pcm.right instanceof Int16Array) {
      throw new TypeError(`Track ${pcm.id}: left and right channels differ in sample type`);
    }
    this.#tracks.set(pcm.id, {
      id: pcm.id,
      rateHz: pcm.rateHz,
      scale: int16 ? 1 / 32768 : 1,
      frames: pcm.left.length,
      pcm,
      whole: { left: pcm.left, right: pcm.right, offset: 0 },
      windows: [],
    });
  }

  /**
   * From now on a loaded track plays from windows of its samples (the same sample type as the
   * whole): `window` goes in slot `slot`, replacing what was there, and the whole track is let
   * go. Frames in no window play as silence, counted in `stats.missedFrames`; the caller keeps
   * windows around {@link wants}.
   */
  setWindow(id: string, slot: number, window: TrackWindow): void {
    const track = this.#tracks.get(id);
    if (!track) return;
    track.pcm = null;
    track.whole = NO_SOURCE;
    track.windows[slot] = window;
    this.#srcTrack = null; // what the playing track is read from may have changed
  }

  /**
   * The track frames the next blocks will read: where each track plays or fades out, and where
   * each play waiting in the queue (or for its track) starts.
   */
  wants(): { trackId: string; frame: number }[] {
    const out: { trackId: string; frame: number }[] = [];
    if (this.#current && this.#pos !== null) {
      out.push({ trackId: this.#current.trackId, frame: this.#pos });
    }
    if (this.#fadeOut > 0 && this.#fadeOutTrack) {
      out.push({ trackId: this.#fadeOutTrack.id, frame: this.#fadeOutPos });
    }
    for (const s of [...this.#queue, ...(this.#awaiting ? [this.#awaiting] : [])]) {
      if (s.kind === "play") out.push({ trackId: s.trackId, frame: s.fromFrame });
    }
    return out;
  }
  dropTrack(id: string): void {
    this.#tracks.delete(id);
    this.#srcTrack = null;
  }
  hasTrack(id: string): boolean {
    return this.#tracks.has(id);
  }

  /** Schedules a change; later schedules at earlier times win over those queued after them. */
  schedule(s: Schedule): void {
    this.#queue = this.#queue.filter((q) => q.atHostMs < s.atHostMs);
    this.#queue.push(s);
  }

  setChannel(mode: ChannelMode): void {
    this.#channel = mode;
  }

  /**
   * The click test: while on, a tick ({@link clickAt}) is mixed in at every whole host second,
   * over music or silence, placed like music (speaker delay, drift) and scaled by the volume.
   */
  setClicks(on: boolean): void {
    this.#clicks = on;
  }

  /**
   * Calibration: the probe ({@link chirpAt}) starts at host time `atHostMs`, mixed over
   * whatever plays, placed like music (speaker delay, drift) but not scaled by the volume or
   * muted: a calibration must be heard.
   */
  playProbe(atHostMs: number): void {
    this.#probes.push(atHostMs);
  }

  /**
   * Moves to the ideal position at the next block (with a crossfade) instead of slewing:
   * for deliberate changes such as a new speaker delay, which the listener expects at once.
   */
  realign(): void {
    this.#realign = true;
  }

  setVolume(volume: number, muted: boolean): void {
    this.#targetGain = muted ? 0 : Math.max(0, Math.min(1, volume)) ** 2; // perceptual-ish taper
  }

  get stats(): PlayerStats {
    return { ...this.#drift.stats, missedFrames: this.#missed };
  }

  /** Track and position heard at host time `hostMs`, if playing. */
  get playing(): { trackId: string; frame: number } | null {
    return this.#current && this.#pos !== null
      ? { trackId: this.#current.trackId, frame: this.#pos }
      : null;
  }

  /**
   * Renders n interleaved stereo frames. `h0` is the host time at which the first is heard,
   * `msPerFrame` the host-time spacing of frames (device rate and both clocks' drift folded in).
   */
  render(n: number, h0: number, msPerFrame: number): Float32Array {
    const out = new Float32Array(n * 2);
    const gain0 = this.#gain;
    const gainStep = (this.#targetGain - this.#gain) / n;
    let step = this.#control(h0, msPerFrame);
    const waited = this.#awaiting;
    if (waited && this.#tracks.has(waited.trackId)) {
      // Its start time is past: begin at the position the others are at now, in sync.
      step = this.#switch(waited, h0, msPerFrame);
    }
    for (let i = 0; i < n; i++) {
      const h = h0 + i * msPerFrame;
      if (this.#queue.length > 0 && h >= this.#queue[0].atHostMs) {
        step = this.#switch(this.#queue.shift()!, h, msPerFrame);
      }
      const g = this.#gain + gainStep * i;
      let l = 0, r = 0;
      const track = this.#current && this.#tracks.get(this.#current.trackId);
      if (track && this.#pos !== null) {
        if (this.#pos >= track.frames) {
          if (!this.#endedReported) {
            this.#endedReported = true;
            this.events.push({ type: "ended", trackId: track.id, atHostMs: h });
          }
        } else {
          let env = 1;
          if (this.#fadeIn < FADE_FRAMES) env = this.#fadeIn++ / FADE_FRAMES;
          // The scale is 1 for float tracks: x·1 is exactly x, so their output is unchanged.
          const pos = this.#pos;
          if (track !== this.#srcTrack || pos < this.#srcFrom || pos > this.#srcTo) {
            this.#locate(track, pos);
          }
          const src = this.#src;
          if (src.left) {
            const at = pos - src.offset;
            l = cubic(src.left, at) * track.scale * env;
            r = cubic(src.right!, at) * track.scale * env;
          } else this.#missed++;
          this.#pos += step;
        }
      }
      if (this.#fadeOut > 0) {
        // The tail of what was playing before a switch, faded to zero.
        const prev = this.#fadeOutTrack;
        if (prev) {
          const env = this.#fadeOut / FADE_FRAMES;
          const src = sourceAt(prev, this.#fadeOutPos);
          if (src.left) {
            const at = this.#fadeOutPos - src.offset;
            l += cubic(src.left, at) * prev.scale * env;
            r += cubic(src.right!, at) * prev.scale * env;
          }
          this.#fadeOutPos += step;
        }
        this.#fadeOut--;
      }
      if (this.#channel !== "stereo") {
        const v = this.#channel === "left" ? l : this.#channel === "right" ? r : (l + r) / 2;
        l = r = v;
      }
      out[2 * i] = l * g;
      out[2 * i + 1] = r * g;
    }
    this.#gain = this.#targetGain;
    if (this.#clicks) mixClicks(out, n, h0, msPerFrame, gain0, gainStep);
    if (this.#probes.length) this.#probes = mixProbes(out, n, h0, msPerFrame, this.#probes);
    return out;
  }

  #fadeOutTrack: Track | null = null;

  /** Finds where the playing track holds `pos`, and for which frames that holds. */
  #locate(track: Track, pos: number): void {
    this.#srcTrack = track;
    this.#src = sourceAt(track, pos);
    const src = this.#src;
    if (!src.left) {
      // Nothing here: look again at the next frame (a window may come in meanwhile).
      this.#srcFrom = pos;
      this.#srcTo = pos;
      return;
    }
    const len = src.left.length;
    this.#srcFrom = src.offset > 0 ? src.offset + 1 : -Infinity;
    this.#srcTo = src.offset + len < track.frames ? src.offset + len - 3 : Infinity;
  }

  #switch(s: Schedule, h: number, msPerFrame: number): number {
    const old = this.#current && this.#tracks.get(this.#current.trackId);
    if (old && this.#pos !== null && this.#pos < old.frames) {
      this.#fadeOutTrack = old;
      this.#fadeOutPos = this.#pos;
      this.#fadeOut = FADE_FRAMES;
    }
    this.#current = null;
    this.#pos = null;
    this.#awaiting = null;
    if (s.kind === "silence") return 0;
    const pcm = this.#tracks.get(s.trackId);
    if (!pcm) {
      this.#awaiting = s;
      this.events.push({ type: "missing", trackId: s.trackId });
      return 0;
    }
    this.#current = s;
    this.#pos = s.fromFrame + ((h - s.atHostMs) * pcm.rateHz) / 1000;
    // Resuming or seeking mid-track fades in over 2 ms; a track's first frame needs no fade.
    this.#fadeIn = s.fromFrame === 0 ? FADE_FRAMES : 0;
    this.#endedReported = false;
    this.events.push({ type: "started", trackId: s.trackId, fromFrame: s.fromFrame, atHostMs: h });
    return (msPerFrame * pcm.rateHz) / 1000;
  }

  /** Per-block drift control; returns the track-frame step per output frame. */
  #control(h0: number, msPerFrame: number): number {
    const cur = this.#current;
    const track = cur && this.#tracks.get(cur.trackId);
    if (!cur || !track || this.#pos === null) return 0;
    const pcm = track;
    // Past the last frame there is nothing to place: the position rests there. Correcting it
    // would resync every block, as the ideal position runs on while the track has ended.
    if (this.#pos >= pcm.frames) return 0;
    const ideal = cur.fromFrame + ((h0 - cur.atHostMs) * pcm.rateHz) / 1000;
    const errMs = ((this.#pos - ideal) * 1000) / pcm.rateHz;
    const base = (msPerFrame * pcm.rateHz) / 1000;
    const realign = this.#realign;
    this.#realign = false;
    const d = this.#drift.decide(errMs, realign);
    if (d.action === "resync") {
      this.#fadeOutTrack = track;
      this.#fadeOutPos = this.#pos;
      this.#fadeOut = FADE_FRAMES;
      this.#pos = ideal;
      this.#fadeIn = 0;
      this.events.push({ type: "resync", trackId: cur.trackId, errorMs: errMs });
      return base;
    }
    return d.action === "nudge" ? base * (1 + d.nudge) : base;
  }
}

/**
 * Adds the ticks that fall within a block: only the frames inside a tick are visited (a block
 * of 20 ms holds at most one tick), so a block without one costs two divisions. The tick is the
 * same on both outputs, so it is added after the channel mix: every channel mode plays it.
 */
function mixClicks(
  out: Float32Array,
  n: number,
  h0: number,
  msPerFrame: number,
  gain0: number,
  gainStep: number,
): void {
  const hEnd = h0 + n * msPerFrame;
  // Every second whose tick overlaps [h0, hEnd): from the one that may still be sounding.
  for (let sec = Math.floor((h0 - CLICK_MS) / 1000) + 1; sec * 1000 < hEnd; sec++) {
    const start = sec * 1000;
    const first = Math.max(0, Math.ceil((start - h0) / msPerFrame));
    const last = Math.min(n, Math.ceil((start + CLICK_MS - h0) / msPerFrame));
    for (let i = first; i < last; i++) {
      const v = clickAt(h0 + i * msPerFrame - start) * (gain0 + gainStep * i);
      out[2 * i] += v;
      out[2 * i + 1] += v;
    }
  }
}

/** Mixes the probes sounding in the block; returns those not yet over. */
function mixProbes(
  out: Float32Array,
  n: number,
  h0: number,
  msPerFrame: number,
  starts: number[],
): number[] {
  const hEnd = h0 + n * msPerFrame;
  for (const start of starts) {
    if (start >= hEnd || start + PROBE.durationMs <= h0) continue;
    const first = Math.max(0, Math.ceil((start - h0) / msPerFrame));
    const last = Math.min(n, Math.ceil((start + PROBE.durationMs - h0) / msPerFrame));
    for (let i = first; i < last; i++) {
      const v = chirpAt(h0 + i * msPerFrame - start);
      out[2 * i] += v;
      out[2 * i + 1] += v;
    }
  }
  return starts.filter((s) => s + PROBE.durationMs > hEnd);
}

/** Samples that hold a stretch of a track: frame f is `left[f - offset]`. */
interface Source {
  left: Samples | null;
  right: Samples | null;
  offset: number;
}
const NO_SOURCE: Source = { left: null, right: null, offset: 0 };

/**
 * Where a track holds frame `pos` with the samples around it that cubic() reads: the whole
 * track, or a window of it (whose inner edges are not the track's: reading across one would
 * take samples that are not there), or nowhere.
 */
function sourceAt(track: Track, pos: number): Source {
  if (track.pcm) return track.whole;
  for (const w of track.windows) {
    if (!w) continue;
    const at = pos - w.offset, len = w.left.length;
    if ((at >= 1 || w.offset === 0) && (at + 2 < len || w.offset + len >= track.frames)) return w;
  }
  return NO_SOURCE;
}

/**
 * Catmull-Rom interpolation of `x` at fractional index `pos` (0 outside the signal), in the
 * samples' own units: the caller scales int16 once per output sample, no type test in here. A
 * process renders one sample type (float natively, int16 in a browser), so the element loads
 * stay monomorphic: a 480-frame block took ~27 µs either way here (Deno 2.9, 44.1 kHz source).
 */
function cubic(x: Samples, pos: number): number {
  const i = Math.floor(pos);
  const t = pos - i;
  if (i < 1 || i + 2 >= x.length) {
    const a = x[i] ?? 0, b = x[i + 1] ?? 0;
    return i < 0 ? 0 : a + (b - a) * t;
  }
  const p0 = x[i - 1], p1 = x[i], p2 = x[i + 1], p3 = x[i + 2];
  return p1 + 0.5 * t *
      (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0)));
}

/** Host time of each end of a block of stream frames, from the device and host clock maps. */
export function blockHostTimes(
  frameToLocalMs: (frame: number) => number,
  map: HostMap,
  frame: number,
  n: number,
): { h0: number; msPerFrame: number } {
  const h0 = localToHost(map, frameToLocalMs(frame));
  const h1 = localToHost(map, frameToLocalMs(frame + n));
  return { h0, msPerFrame: (h1 - h0) / n };
}
