/**
 * A track decoded while it plays: the MP3's bytes stay in memory (a tenth of its PCM at 128
 * kbit/s) and only a window of samples around the play position is decoded, a few seconds
 * ahead, so a 10-minute track costs ~3 MB of samples instead of 115 MB.
 *
 * The window's samples are those of a whole-file decode (`decodeMp3`, gapless): a decoder
 * started at any frame gives, after two frames of warm-up (bit reservoir, overlap of the
 * transform, the synthesis filter), the same samples as one that started at the beginning,
 * shifted by a constant: the encoder's delay plus the decoder's own (measured: equal to 1e-7,
 * so the same 16-bit sample or its neighbour; the shift constant over the file). That shift is found once per track by decoding its first
 * frames both ways; a track where it cannot be found is not streamed (the caller decodes it
 * whole).
 *
 * The window is a {@link Pcm} whose `offset` is the index of its first sample in the whole
 * track: the player reads it in place, and reads silence outside it (which only happens if
 * decoding fell behind; `pump` is given a larger budget then).
 */
import { MPEGDecoder } from "mpg123-decoder";
import { parseHeader } from "./mp3_scan.ts";
import type { Pcm } from "./player.ts";

/** A window of a track: `left[i]` is sample `offset + i` of the whole track. */
export type WindowPcm = Pcm<Int16Array> & {
  offset: number;
  frames: number;
  /** The player jumps to `frame` (a seek): read from a window made ready there, if any. */
  jumpTo(frame: number): void;
};

/** Samples of warm-up after a decoder starts mid-file (two frames, measured: ≤ 2178). */
const WARM_FRAMES = 3;
/** How far behind the play position the window keeps samples (slewing, the crossfade). */
const BACK_SEC = 1;
/** Window size: what is kept ahead of the play position and behind it. */
const WINDOW_SEC = 12;

interface DecodeOut {
  channelData: Float32Array[];
  samplesDecoded: number;
}

/** Where a track's frames are: shared by the windows of one stream. */
interface Layout {
  bytes: Uint8Array;
  /** Byte offset of each MPEG frame (and the end), and the first raw sample of each. */
  frameAt: number[];
  sampleAt: number[];
  /** Whole-track index of raw sample 0 of a decoder started at frame 0, negated. */
  shift: number;
  frames: number;
}

/** A span of the track decoded by a decoder of its own: `left[i]` is sample `offset + i`. */
class Window {
  offset = 0;
  /** End of the decoded samples (whole-track index, exclusive). */
  end = 0;
  #decoder: MPEGDecoder | null = null;
  /** The decoder has started (WebAssembly instantiates asynchronously). */
  #ready = false;
  started: Promise<void> = Promise.resolve();
  /** Next frame the decoder reads, and the whole-track index of the first sample it gives. */
  #nextFrame = 0;
  #nextIndex = 0;
  /** Samples below this index from the current decoder are warm-up: dropped. */
  #validFrom = 0;

  constructor(readonly t: Layout, readonly left: Int16Array, readonly right: Int16Array) {}

  get running(): boolean {
    return this.#decoder !== null;
  }

  covers(frame: number): boolean {
    return frame >= this.offset && frame < this.end;
  }

  /** Could decoding on reach `frame` soon (within `slack` samples past the end)? */
  reaches(frame: number, slack: number): boolean {
    return this.#decoder !== null && frame >= this.offset && frame <= this.end + slack;
  }

  /**
   * A decoder whose output is valid from `from` on: near the start, a gapless one from the
   * first frame (exactly the whole-file decode); elsewhere a raw one a few frames before, whose
   * warm-up is dropped. `fresh`: the window starts again at `from` (else it goes on from its
   * end).
   */
  restart(from: number, fresh: boolean) {
    this.free();
    const t = this.t, raw = from + t.shift;
    let j = 0;
    while (j + 1 < t.sampleAt.length && t.sampleAt[j + 1] <= raw) j++;
    const gapless = j - WARM_FRAMES < 1;
    const d = new MPEGDecoder({ enableGapless: gapless });
    this.#decoder = d;
    if (gapless) {
      this.#nextFrame = 0;
      this.#nextIndex = 0;
      this.#validFrom = -Infinity;
    } else {
      this.#nextFrame = j - WARM_FRAMES;
      this.#nextIndex = t.sampleAt[this.#nextFrame] - t.shift;
      this.#validFrom = t.sampleAt[j] - t.shift;
    }
    if (fresh) this.offset = this.end = from;
    this.started = d.ready.then(() => {
      if (this.#decoder === d) this.#ready = true;
    });
  }

  /** Drops the samples before `from` (≤ end), moving the rest to the start of the buffers. */
  slide(from: number) {
    const drop = from - this.offset;
    this.left.copyWithin(0, drop, this.end - this.offset);
    this.right.copyWithin(0, drop, this.end - this.offset);
    this.offset = from;
  }

  /** Decodes on towards `until` (capped by what the buffers hold), at most `budget` samples. */
  decode(until: number, budget: number) {
    if (!this.#ready) return;
    const t = this.t, last = t.frameAt.length - 1;
    const room = this.offset + this.left.length;
    until = Math.min(until, t.frames, room);
    for (let done = 0; this.end < until && done < budget && this.#nextFrame < last;) {
      const n = Math.min(8, last - this.#nextFrame);
      // Decode only what fits: samples decoded past the buffers could not be had again
      // without a restart.
      const more = t.sampleAt[this.#nextFrame + n] - t.sampleAt[this.#nextFrame];
      if (this.#nextIndex + more > room && this.#nextIndex + more <= t.frames) break;
      const out = this.#decoder!.decode(
        t.bytes.subarray(t.frameAt[this.#nextFrame], t.frameAt[this.#nextFrame + n]),
      ) as DecodeOut;
      this.#nextFrame += n;
      done += this.#store(out);
    }
  }

  free() {
    this.#decoder?.free();
    this.#decoder = null;
    this.#ready = false;
  }

  /** Writes a decoder output into the window (what falls inside it); returns samples decoded. */
  #store(out: DecodeOut): number {
    const n = out.samplesDecoded;
    const l = out.channelData[0], r = out.channelData[1] ?? l;
    const first = this.#nextIndex;
    this.#nextIndex += n;
    const lo = Math.max(first, this.end, this.#validFrom, this.offset);
    const hi = Math.min(first + n, this.t.frames, this.offset + this.left.length);
    if (hi <= lo) return n;
    // The decoder skipped samples (a damaged frame): the gap plays as silence.
    if (lo > this.end) {
      this.left.fill(0, this.end - this.offset, lo - this.offset);
      this.right.fill(0, this.end - this.offset, lo - this.offset);
    }
    for (let k = lo; k < hi; k++) {
      this.left[k - this.offset] = toInt16(l[k - first]);
      this.right[k - this.offset] = toInt16(r[k - first]);
    }
    this.end = hi;
    return n;
  }
}

export class TrackStream {
  readonly pcm: WindowPcm;
  /** The window the player reads, and one made ready where a scheduled seek will land. */
  #main: Window;
  #spare: Window;

  private constructor(readonly t: Layout, id: string, rateHz: number) {
    const size = Math.ceil(WINDOW_SEC * rateHz);
    const make = () => new Window(t, new Int16Array(size), new Int16Array(size));
    this.#main = make();
    this.#spare = make();
    this.pcm = {
      id,
      rateHz,
      left: this.#main.left,
      right: this.#main.right,
      offset: 0,
      frames: t.frames,
      jumpTo: (frame) => this.#jumpTo(frame),
    };
  }

  /**
   * A stream of the MP3 in `bytes`, whose whole-file gapless decode is `frames` samples long at
   * `rateHz`; null when the file is too short to stream or its decoders disagree (decode it
   * whole then).
   */
  static async open(
    bytes: Uint8Array,
    t: { id: string; rateHz: number; frames: number },
  ): Promise<TrackStream | null> {
    const frameAt: number[] = [], sampleAt: number[] = [];
    let at = id3Length(bytes), samples = 0;
    while (at < bytes.length) {
      const h = parseHeader(bytes, at);
      if (!h) {
        if (frameAt.length) break; // trailing tag
        at++;
        continue;
      }
      frameAt.push(at);
      sampleAt.push(samples);
      at += h.bytes;
      samples += h.samples;
    }
    frameAt.push(at);
    sampleAt.push(samples);
    if (frameAt.length < 64 || t.frames < 4 * t.rateHz) return null;
    const shift = await findShift(bytes, frameAt, sampleAt);
    if (shift === null) return null;
    return new TrackStream({ bytes, frameAt, sampleAt, shift, frames: t.frames }, t.id, t.rateHz);
  }

  /** Decoded samples of the window the player reads cover [pcm.offset, end). */
  get end(): number {
    return this.#main.end;
  }

  /** Settles when the decoders last restarted have started (nothing is decoded before). */
  get started(): Promise<void> {
    return Promise.all([this.#main.started, this.#spare.started]).then(() => {});
  }

  /**
   * Keeps the window the player reads on `need` (a whole-track sample index): decoded from a
   * second before it to as far ahead as it holds, at most `budget` samples decoded now. A
   * `need` that decoding on would not reach within a second restarts it there. `upcoming`: a
   * position a schedule will jump to (a seek) that this window will not hold: the spare window
   * gets it ready, and becomes the one read when the player jumps ({@link WindowPcm.jumpTo}).
   */
  pump(need: number, budget: number, upcoming?: number): void {
    const back = Math.floor(BACK_SEC * this.pcm.rateHz);
    const at = (x: number) => Math.max(0, Math.min(this.t.frames, Math.floor(x)));
    need = at(need);
    const main = this.#main;
    // Two seconds of slack: a restarted decoder starts asynchronously, and the play position
    // moves on meanwhile (restarting again at every block would never decode anything).
    if (!main.reaches(need, 2 * back)) main.restart(Math.max(0, need - back), true);
    if (need - back > main.offset + back) main.slide(need - back);
    main.decode(need + this.#main.left.length, budget);
    this.#sync();
    if (upcoming === undefined) return;
    const u = at(upcoming);
    if (main.covers(u) || main.reaches(u, back)) return;
    const spare = this.#spare;
    if (!spare.reaches(u, back)) spare.restart(Math.max(0, u - back), true);
    // A second or two past the landing point is enough until the jump.
    spare.decode(u + 2 * back, budget);
  }

  free(): void {
    this.#main.free();
    this.#spare.free();
  }

  /** The player jumps to `frame`: if the spare window holds it, read that one from now on. */
  #jumpTo(frame: number) {
    if (this.#main.covers(frame) || !this.#spare.covers(frame)) return;
    [this.#main, this.#spare] = [this.#spare, this.#main];
    this.#sync();
  }

  #sync() {
    const p = this.pcm, w = this.#main;
    p.left = w.left;
    p.right = w.right;
    p.offset = w.offset;
  }
}

function toInt16(v: number): number {
  const x = Math.round(v * 32768);
  return x > 32767 ? 32767 : x < -32768 ? -32768 : x;
}

/**
 * The whole-track index of raw sample 0 of a decoder started at frame 0, negated: decodes the
 * first frames gapless from the start (as `decodeMp3` does) and the same span raw from frame 8,
 * and finds where they agree. Null if they never agree to 1e-5.
 */
async function findShift(
  bytes: Uint8Array,
  frameAt: number[],
  sampleAt: number[],
): Promise<number | null> {
  const gapless = new MPEGDecoder({ enableGapless: true });
  const raw = new MPEGDecoder({ enableGapless: false });
  await Promise.all([gapless.ready, raw.ready]);
  try {
    const g = (gapless.decode(bytes.subarray(0, frameAt[48])) as DecodeOut).channelData[0];
    const from = 8;
    const x = (raw.decode(bytes.subarray(frameAt[from], frameAt[40])) as DecodeOut).channelData[0];
    // x[i] is raw sample sampleAt[from] + i, whole-track index sampleAt[from] + i − shift.
    const i0 = sampleAt[from + WARM_FRAMES] - sampleAt[from];
    const span = 1024;
    if (x.length < i0 + span) return null;
    for (let shift = 0; shift <= sampleAt[from] + i0; shift++) {
      const base = sampleAt[from] - shift;
      if (base + i0 + span > g.length) continue;
      let ok = true;
      for (let i = i0; i < i0 + span && ok; i++) ok = Math.abs(x[i] - g[base + i]) < 1e-5;
      if (ok) return shift;
    }
    return null;
  } finally {
    gapless.free();
    raw.free();
  }
}

/** Bytes of an ID3v2 tag at the start, if any. */
function id3Length(b: Uint8Array): number {
  if (b.length < 10 || b[0] !== 0x49 || b[1] !== 0x44 || b[2] !== 0x33) return 0;
  return 10 + ((b[6] & 0x7f) << 21 | (b[7] & 0x7f) << 14 | (b[8] & 0x7f) << 7 | (b[9] & 0x7f)) +
    (b[5] & 0x10 ? 10 : 0);
}
