/**
 * Long tracks wait on disk while a native device plays them: the audio thread keeps two windows
 * of each (about {@link WINDOW_SEC} each): one where it plays (or fades out), one where a queued
 * play (a seek, the next track) starts ({@link Player.wants}), and reads the next window from a
 * temporary file ahead of need. A 10-minute stereo track held whole is 115 MB of 16-bit
 * samples; held this way, ~3 MB.
 *
 * Nothing is decoded here: the track arrives decoded, is written to the file once, and its
 * samples are read back unchanged, so what plays is bit for bit what would have played from
 * memory (tested). The file is unlinked once open (Linux, macOS), so nothing is left behind
 * even if the process is killed; where that is refused (Windows), it is removed when the track
 * goes. While a track is being written, and until its first window is in, the whole track stays
 * in the player.
 */
import type { Pcm, Player, Samples, TrackWindow } from "./player.ts";

/** Frames of a track held at once, in seconds of the track. */
export const WINDOW_SEC = 8;
/** A window is replaced when a wanted frame comes within this of its end (seconds). */
const AHEAD_SEC = 3;
/** A new window starts this far before the wanted frame (seconds): a little backward room. */
const BEHIND_SEC = 1;
/** Tracks at most this long (seconds) stay whole in memory: a window would not save much. */
export const SPILL_MIN_SEC = 2 * WINDOW_SEC;

interface Spilled {
  id: string;
  file: Deno.FsFile | null;
  /** Still on disk under this name (the unlink was refused); removed when the track goes. */
  path: string | null;
  frames: number;
  rateHz: number;
  int16: boolean;
  /** The windows in the player's slots (track frames). */
  slots: ({ offset: number; length: number } | undefined)[];
  loading: boolean;
  dropped: boolean;
}

export class TrackWindows {
  #tracks = new Map<string, Spilled>();
  #dir: Promise<string> | null = null;
  #busy = new Set<Promise<void>>();
  /** Windows read so far (for the status and tests). */
  loads = 0;

  constructor(
    private readonly player: Player,
    private readonly onError: (text: string) => void = () => {},
    /** Called once a whole track's samples have been let go. */
    private readonly onReleased: () => void = () => {},
  ) {}

  /** The folder of the track files, once one was made. */
  get folder(): Promise<string> | null {
    return this.#dir;
  }

  /** How many tracks play from disk. */
  get size(): number {
    return this.#tracks.size;
  }

  /** Whether `id` plays from disk through windows. */
  has(id: string): boolean {
    return this.#tracks.has(id);
  }

  /**
   * Writes a track the player holds whole to a file, then hands the player a window of it and
   * lets the whole go. Tracks of {@link SPILL_MIN_SEC} or less are left as they are.
   */
  spill(pcm: Pcm): Promise<void> {
    const p = this.#spill(pcm);
    this.#track(p);
    return p;
  }

  async #spill(pcm: Pcm): Promise<void> {
    const frames = pcm.left.length;
    if (frames <= SPILL_MIN_SEC * pcm.rateHz || this.#tracks.has(pcm.id)) return;
    const t: Spilled = {
      id: pcm.id,
      file: null,
      path: null,
      frames,
      rateHz: pcm.rateHz,
      int16: pcm.left instanceof Int16Array,
      slots: [],
      loading: true,
      dropped: false,
    };
    this.#tracks.set(pcm.id, t);
    try {
      const dir = await (this.#dir ??= Deno.makeTempDir({ prefix: "phaselock-tracks-" }));
      if (t.dropped) return;
      t.path = `${dir}/${crypto.randomUUID()}.pcm`;
      const file = t.file = await Deno.open(t.path, { read: true, write: true, createNew: true });
      // The left channel, then the right: a window is two reads.
      await writeAll(file, bytesOf(pcm.left));
      await writeAll(file, bytesOf(pcm.right));
      try {
        await Deno.remove(t.path);
        t.path = null;
      } catch { /* open files cannot be removed here: removed when the track goes */ }
      if (t.dropped) return;
      const start = this.player.wants().find((w) => w.trackId === pcm.id)?.frame ?? 0;
      await this.#load(t, 0, start);
      if (t.dropped) return;
      // The player reads the window now: the whole track's memory goes back at once.
      for (const b of new Set([pcm.left.buffer, pcm.right.buffer])) (b as ArrayBuffer).transfer(0);
      this.onReleased();
    } catch (e) {
      if (!t.dropped) {
        this.onError(
          `Could not keep "${pcm.id}" on disk; it stays in memory: ${(e as Error).message}`,
        );
      }
      t.dropped = true;
      if (this.#tracks.get(pcm.id) === t) this.#tracks.delete(pcm.id);
    } finally {
      t.loading = false;
      if (t.dropped) this.#close(t);
    }
  }

  /**
   * Keeps each spilled track's windows around what the player wants next (call every block):
   * a wanted frame with less than AHEAD_SEC of its window left gets a new window, in a slot no
   * more urgent want uses (the playing position comes first). One read at a time per track.
   */
  maintain(): void {
    if (this.#tracks.size === 0) return;
    const used = new Map<Spilled, Set<number>>();
    for (const w of this.player.wants()) {
      const t = this.#tracks.get(w.trackId);
      if (!t || t.slots.length === 0) continue;
      const taken = used.get(t) ?? new Set<number>();
      used.set(t, taken);
      const ok = t.slots.findIndex((s) => s && this.#covers(t, s, w.frame));
      if (ok >= 0) {
        taken.add(ok);
        continue;
      }
      if (t.loading) continue;
      const free = [0, 1].filter((i) => !taken.has(i));
      const slot = free.find((i) => holds(t.slots[i], w.frame)) ??
        free.find((i) => !t.slots[i]) ?? free[0];
      if (slot === undefined) continue;
      taken.add(slot);
      t.loading = true;
      this.#track(
        this.#load(t, slot, w.frame).catch((e) => {
          this.onError(`Could not read "${t.id}" back from disk: ${(e as Error).message}`);
        }),
      );
    }
  }

  /** Whether a window holds `frame` with room to play on (or the track's end within it). */
  #covers(t: Spilled, s: { offset: number; length: number }, frame: number): boolean {
    const end = s.offset + s.length;
    const from = s.offset + (s.offset > 0 ? t.rateHz : 0);
    return frame >= from && (end >= t.frames || frame <= end - AHEAD_SEC * t.rateHz);
  }

  /** Resolves once no window is being read (tests: the reads keep up, as they do in time). */
  async idle(): Promise<void> {
    while (this.#busy.size) await Promise.all(this.#busy);
  }

  #track(p: Promise<void>) {
    this.#busy.add(p);
    p.finally(() => this.#busy.delete(p));
  }

  /** Forgets a track (the player drops it too). */
  drop(id: string): void {
    const t = this.#tracks.get(id);
    if (!t) return;
    t.dropped = true;
    this.#tracks.delete(id);
    if (!t.loading) this.#close(t);
  }

  /** Closes every file and removes the folder. */
  async close(): Promise<void> {
    for (const id of [...this.#tracks.keys()]) this.drop(id);
    const dir = await this.#dir?.catch(() => null);
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  async #load(t: Spilled, slot: number, frame: number): Promise<void> {
    t.loading = true;
    try {
      const start = Math.max(0, Math.min(Math.floor(frame - BEHIND_SEC * t.rateHz), t.frames - 1));
      const end = Math.min(t.frames, start + WINDOW_SEC * t.rateHz);
      const make = (n: number): Samples => t.int16 ? new Int16Array(n) : new Float32Array(n);
      const left = make(end - start), right = make(end - start);
      const bytes = left.BYTES_PER_ELEMENT;
      if (!t.file) throw new Error("its file is closed");
      await readAt(t.file, start * bytes, bytesOf(left));
      await readAt(t.file, (t.frames + start) * bytes, bytesOf(right));
      this.loads++;
      if (t.dropped) return;
      const window: TrackWindow = { offset: start, left, right };
      this.player.setWindow(t.id, slot, window);
      t.slots[slot] = { offset: start, length: end - start };
    } finally {
      t.loading = false;
      if (t.dropped) this.#close(t);
    }
  }

  #close(t: Spilled) {
    try {
      t.file?.close();
    } catch { /* closed */ }
    t.file = null;
    if (t.path) Deno.remove(t.path).catch(() => {});
    t.path = null;
  }
}

function holds(s: { offset: number; length: number } | undefined, frame: number): boolean {
  return !!s && frame >= s.offset && frame < s.offset + s.length;
}

function bytesOf(a: Samples): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let n = 0; n < bytes.length;) n += await file.write(bytes.subarray(n));
}

async function readAt(file: Deno.FsFile, at: number, into: Uint8Array): Promise<void> {
  await file.seek(at, Deno.SeekMode.Start);
  for (let n = 0; n < into.length;) {
    const r = await file.read(into.subarray(n));
    if (r === null) throw new Error(`the file ended at byte ${at + n}`);
    n += r;
  }
}
