/// <reference lib="dom" />
/**
 * A web page's audio output: one continuous chain of AudioBufferSourceNodes, each starting where
 * the last ends (every boundary a whole number of context frames, so nothing drifts or clicks),
 * whose content the native engine's {@link Player} renders for the host time at which each frame
 * will be heard. Drift, seek, pause, speaker delay and channel are therefore the same code as on
 * native devices; what is browser-specific is only *when* a context frame is heard, which
 * {@link StepTimeline} (output timestamps) and {@link ContextTimeline} (`currentTime`) fit from
 * the browser's reports.
 */
import { type HostMap, localToHost } from "../../net/local_clock.ts";
import {
  type ChannelMode,
  type Pcm,
  Player,
  type PlayerEvent,
  type Schedule,
} from "../../audio/player.ts";
import { BROWSER_DRIFT } from "../../audio/drift.ts";
import { ContextTimeline, StepTimeline } from "./timeline.ts";

/** Frames per source node: ~43 ms at 48 kHz. */
const CHUNK_FRAMES = 2048;
/** Audio rendered ahead of the context's clock. Enough to ride out a busy main thread. */
const AHEAD_SEC = 0.25;
/**
 * Added to every sample: 2^-20, −120 dBFS, below what any output can play. Chromium closes the
 * sound-server stream of a page that renders only zeros for ~30 s, and opens a new one when sound
 * comes. A page waiting for a file or for Play is silent that long, and the new stream's timing
 * reports then wander for seconds (measured here: tens of ms, for up to 15 s). Never exactly
 * zero, the stream stays open and its timing stays learned.
 */
const KEEP_OPEN = 2 ** -20;
/** A context whose clock has not moved for this long while "running" is frozen (a locked phone). */
const FROZEN_MS = 1200;

export interface OutputStatus {
  /** Which report places the frames: the output timestamp, or currentTime plus latency. */
  source: "timestamp" | "clock";
  spreadMs: number;
  playing: { trackId: string; frame: number } | null;
  errorMs: number;
  resyncs: number;
  rateHz: number;
  state: AudioContextState | "frozen";
}

/**
 * Where in the spread of `currentTime` readings the truth lies, per engine (measured here with
 * the bus recorder, design §6). Chromium's `currentTime` steps forward once per render block:
 * its lower edge plus the reported latencies matches its output timestamp within 0.5 ms.
 * Firefox's advances ~6 % slow between jumps every ~250 ms (a sawtooth of ~20 ms): its centre
 * plus `outputLatency` lands on the recording.
 */
function clockQuantile(): number {
  return FIREFOX ? 0.5 : 0.05;
}
const FIREFOX = typeof navigator !== "undefined" && /Firefox\//.test(navigator.userAgent);

/**
 * How often the reported latencies are read. In Firefox reading them (and the output
 * timestamp) asks its audio process; read every 20 ms, a page froze for good in 1 run of 3
 * (its main thread waiting on the audio IPC, measured by the sync benchmark).
 */
const LATENCY_READ_MS = 1000;

export class WebOutput {
  readonly ctx: AudioContext;
  readonly player: Player;
  readonly #stamp = new StepTimeline();
  readonly #clock = new ContextTimeline({ quantile: clockQuantile() });
  #useStamp = false;
  #latencyMs = 0;
  #latencyReadMs = -Infinity;
  #map: HostMap | null = null;
  #nextFrame: number | null = null;
  #sources: AudioBufferSourceNode[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #speakerDelayMs = 0;
  #lastCtxSec = -1;
  #lastMoveMs = performance.now();
  #frozen = false;
  /**
   * Twice a second: how the two reports compared and which was used, and where the host's clock
   * was thought to be (tests, benchmark: what moved when a page went out of sync).
   */
  readonly trace: {
    /** Page clock (epoch ms, like the recorder's). */
    atMs: number;
    /** Host clock minus this page's at `atMs`, as the clock filter had it. */
    hostMinusPageMs: number | null;
    source: string;
    apartMs: number | null;
    stampSpreadMs: number | null;
    clockSpreadMs: number | null;
    errorMs: number;
    resyncs: number;
    /** Steps the output timestamps' fit has taken (a step realigns the player). */
    steps: number;
  }[] = [];
  #lastTraceMs = 0;
  onEvent: (e: PlayerEvent) => void = () => {};
  /** The context stopped (frozen, suspended, interrupted); the page may need a tap. */
  onStateChange: () => void = () => {};

  /**
   * @param hiddenLatencyMs testing aid (the page's `?simOutputLatencyMs=MS`): the sound comes
   * this much later than the page knows, like a Bluetooth speaker's latency.
   */
  constructor(ctx?: AudioContext, readonly hiddenLatencyMs = 0) {
    this.ctx = ctx ?? new AudioContext({ latencyHint: "playback" });
    this.player = new Player(this.ctx.sampleRate, BROWSER_DRIFT);
    this.ctx.onstatechange = () => this.onStateChange();
    this.#timer = setInterval(() => this.pump(), 20);
  }

  /** Resumes the context (call from a user gesture where the browser needs one). */
  async resume(): Promise<boolean> {
    try {
      await this.ctx.resume();
    } catch { /* not allowed without a gesture */ }
    return this.ctx.state === "running";
  }

  get needsGesture(): boolean {
    return this.ctx.state !== "running" || this.#frozen;
  }

  setHostMap(m: HostMap): void {
    this.#map = m;
  }
  addTrack(pcm: Pcm): void {
    this.player.addTrack(pcm);
  }
  dropTrack(id: string): void {
    this.player.dropTrack(id);
  }
  hasTrack(id: string): boolean {
    return this.player.hasTrack(id);
  }
  schedule(s: Schedule): void {
    this.player.schedule(s);
  }
  setVolume(volume: number, muted: boolean): void {
    this.player.setVolume(volume, muted);
  }
  setChannel(c: ChannelMode): void {
    this.player.setChannel(c);
  }
  /** The click test: a tick at every whole host second while on. */
  setClicks(on: boolean): void {
    this.player.setClicks(on);
  }
  setSpeakerDelay(ms: number): void {
    this.#speakerDelayMs = ms;
    this.player.realign();
  }

  /** How far ahead of being heard this output commits its sound (the host adds it to its lead). */
  get bufferMs(): number {
    return Math.round((AHEAD_SEC * 1000 + (CHUNK_FRAMES * 1000) / this.ctx.sampleRate) * 1.2);
  }

  get status(): OutputStatus {
    const source = this.#source();
    const stats = this.player.stats;
    return {
      source,
      spreadMs: (source === "timestamp" ? this.#stamp : this.#clock).fit?.spreadMs ?? 0,
      playing: this.player.playing,
      errorMs: stats.errorMs,
      resyncs: stats.resyncs,
      rateHz: this.ctx.sampleRate,
      state: this.#frozen ? "frozen" : this.ctx.state,
    };
  }

  /**
   * Which report to trust. Measured here (design §6): Chromium's output timestamp is steady
   * (spread 0.05 ms) and right; Firefox's only echoes its `currentTime` sawtooth (spread
   * 2–3 ms, output latency left out: 35 ms late), WebKitGTK's is frozen (spread of seconds).
   * So the timestamp is used while it is steadier than `currentTime`, which it is only where
   * it is a real output timestamp.
   */
  #source(): "timestamp" | "clock" {
    const s = this.#stamp.fit, c = this.#clock.fit;
    if (!s || !c || s.samples < 10) return (this.#useStamp = false, "clock");
    // Under load Chromium's timestamp gets noisier (3–5 ms) but its currentTime far more so:
    // what counts is which is steadier. Firefox's two are the same readings (equal spread).
    if (s.spreadMs < 0.7 * c.spreadMs) this.#useStamp = true;
    else if (s.spreadMs > 0.9 * c.spreadMs) this.#useStamp = false;
    return this.#useStamp ? "timestamp" : "clock";
  }

  #sample() {
    const ctx = this.ctx;
    const now = performance.now();
    // Firefox's timestamp only repeats currentTime (see #source): not worth asking for.
    if (!FIREFOX && typeof ctx.getOutputTimestamp === "function") {
      const ts = ctx.getOutputTimestamp();
      if (ts.contextTime && ts.performanceTime) {
        // A step is the device having glitched (a late block, a busy sound server): the sound
        // already moved, so it moves back at once (a crossfade), not by a second of slewing.
        const stepped = this.#stamp.add({ ctxSec: ts.contextTime, heardMs: ts.performanceTime });
        if (stepped && this.#useStamp) this.player.realign();
      }
    }
    if (now - this.#latencyReadMs >= LATENCY_READ_MS) {
      this.#latencyReadMs = now;
      this.#latencyMs = ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000;
    }
    // currentTime is the start of the next block to render: heard after the latency.
    this.#clock.add({ ctxSec: ctx.currentTime, heardMs: now + this.#latencyMs });
    if (ctx.currentTime !== this.#lastCtxSec) {
      this.#lastCtxSec = ctx.currentTime;
      this.#lastMoveMs = now;
      if (this.#frozen) {
        this.#frozen = false;
        this.onStateChange();
      }
    } else if (ctx.state === "running" && now - this.#lastMoveMs > FROZEN_MS && !this.#frozen) {
      this.#frozen = true;
      this.onStateChange();
    }
  }

  /** Keeps the chain filled; runs every 20 ms and whenever the page wakes up. */
  pump(): void {
    const ctx = this.ctx;
    if (ctx.state !== "running") return;
    this.#sample();
    const map = this.#map;
    const source = this.#source();
    const timeline = source === "timestamp" ? this.#stamp : this.#clock;
    const t = performance.now();
    if (t - this.#lastTraceMs >= 500) {
      this.#lastTraceMs = t;
      const s = this.#stamp.fit, c = this.#clock.fit;
      const stats = this.player.stats;
      const at = performance.timeOrigin + t;
      this.trace.push({
        atMs: Math.round(at),
        hostMinusPageMs: map ? localToHost(map, at) - at : null,
        source,
        apartMs: s && c ? this.#stamp.heardMs(c.refSec) - this.#clock.heardMs(c.refSec) : null,
        stampSpreadMs: s?.spreadMs ?? null,
        clockSpreadMs: c?.spreadMs ?? null,
        errorMs: stats.errorMs,
        resyncs: stats.resyncs,
        steps: this.#stamp.jumps,
      });
      if (this.trace.length > 240) this.trace.shift();
    }
    if (!map || !timeline.fit || this.#frozen) return;
    const rate = ctx.sampleRate;
    const now = ctx.currentTime;
    // Not started, or starved (a frozen tab, a long stall): start again a little ahead. The
    // player sees the host time jump and re-places the track there.
    let next = this.#nextFrame;
    if (next === null || next / rate < now + 0.02) next = Math.ceil((now + 0.06) * rate);
    const hostAt = (frame: number) =>
      localToHost(map, performance.timeOrigin + timeline.heardMs(frame / rate)) +
      this.#speakerDelayMs - this.hiddenLatencyMs;
    while (next / rate < now + AHEAD_SEC) {
      const start: number = next;
      const n = CHUNK_FRAMES;
      const h0 = hostAt(start);
      const block = this.player.render(n, h0, (hostAt(start + n) - h0) / n);
      const buffer = ctx.createBuffer(2, n, rate);
      const l = new Float32Array(n), r = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        l[i] = block[2 * i] + KEEP_OPEN;
        r[i] = block[2 * i + 1] + KEEP_OPEN;
      }
      buffer.copyToChannel(l, 0);
      buffer.copyToChannel(r, 1);
      const src = ctx.createBufferSource();
      src.buffer = buffer;
      src.connect(ctx.destination);
      src.start(start / rate);
      src.onended = () => {
        const i = this.#sources.indexOf(src);
        if (i >= 0) this.#sources.splice(i, 1);
      };
      this.#sources.push(src);
      next = start + n;
    }
    this.#nextFrame = next;
    if (this.player.events.length) {
      const evs = this.player.events;
      this.player.events = [];
      for (const e of evs) this.onEvent(e);
    }
  }

  /** The page came back (visible again, network back): re-read the device and refill now. */
  wake(): void {
    this.#lastMoveMs = performance.now();
    this.pump();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const s of this.#sources) {
      try {
        s.stop();
      } catch { /* not started */ }
    }
    this.#sources = [];
    await this.ctx.close().catch(() => {});
  }
}
