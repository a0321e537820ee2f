import { assertEquals, assertTrue } from "../tests/assert.ts";
import { type Pcm, Player, type Schedule } from "./player.ts";
import { SPILL_MIN_SEC, TrackWindows, WINDOW_SEC } from "./track_windows.ts";

const RATE = 8000; // a small rate keeps a long track small; the windows are in seconds
const OUT_RATE = 8100; // not the track's: every frame is interpolated from four samples
const BLOCK = 81; // 10 ms of output

/** A track `sec` long of a different value at every frame (an LCG), as 16-bit samples. */
function track(id: string, sec: number): Pcm<Int16Array> {
  const n = sec * RATE;
  const left = new Int16Array(n), right = new Int16Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    left[i] = (x >>> 16) - 32768;
    right[i] = ((x >>> 8) & 0xffff) - 32768;
  }
  return { id, rateHz: RATE, left, right };
}

const detached = (a: Int16Array) => (a.buffer as ArrayBuffer).detached;

const copy = (p: Pcm<Int16Array>): Pcm<Int16Array> => ({
  ...p,
  left: p.left.slice(),
  right: p.right.slice(),
});

/**
 * Renders `sec` seconds from host time 0 on a player holding the track whole and on one playing
 * it through windows (the reads keeping up between blocks), with the same schedules.
 */
async function both(pcm: Pcm<Int16Array>, schedules: Schedule[], sec: number) {
  const whole = new Player(OUT_RATE), windowed = new Player(OUT_RATE);
  whole.addTrack(copy(pcm));
  const mine = copy(pcm);
  windowed.addTrack(mine);
  const w = new TrackWindows(windowed, (e) => {
    throw new Error(e);
  });
  await w.spill(mine);
  for (const s of schedules) {
    whole.schedule(s);
    windowed.schedule(s);
  }
  const msPerFrame = 1000 / OUT_RATE;
  let same = true, firstDiff = -1;
  for (let b = 0; b * BLOCK < sec * OUT_RATE; b++) {
    const h0 = b * BLOCK * msPerFrame;
    const x = whole.render(BLOCK, h0, msPerFrame), y = windowed.render(BLOCK, h0, msPerFrame);
    for (let i = 0; i < x.length && same; i++) {
      if (x[i] !== y[i]) [same, firstDiff] = [false, b * BLOCK + (i >> 1)];
    }
    w.maintain();
    await w.idle();
  }
  return { w, windowed, same, firstDiff, mine };
}

Deno.test("track windows: a long track plays bit for bit as from memory, through seeks", async () => {
  const pcm = track("long", 150);
  const { w, windowed, same, firstDiff, mine } = await both(pcm, [
    { kind: "play", atHostMs: 0, trackId: "long", fromFrame: 0 },
    // Seeks, each told 300 ms ahead as the host does: far ahead, then back.
    { kind: "play", atHostMs: 30_000, trackId: "long", fromFrame: 100 * RATE },
    { kind: "play", atHostMs: 45_000, trackId: "long", fromFrame: 10 * RATE },
    { kind: "silence", atHostMs: 60_000 },
    { kind: "play", atHostMs: 61_000, trackId: "long", fromFrame: 140 * RATE },
  ], 75);
  assertTrue(same, `the windowed player differs from frame ${firstDiff} on`);
  assertEquals(windowed.stats.missedFrames, 0);
  assertTrue(w.has("long"));
  // The whole track was let go; windows were read as it went (30 s + 15 s + 14 s of playing).
  assertTrue(detached(mine.left) && detached(mine.right), "the whole track is kept");
  assertTrue(w.loads >= 5, `${w.loads} windows read`);
  await w.close();
});

Deno.test("track windows: a seek told too late plays silence until its window is in, then in place", async () => {
  const pcm = track("late", 120);
  const whole = new Player(OUT_RATE), p = new Player(OUT_RATE);
  whole.addTrack(copy(pcm));
  p.addTrack(copy(pcm));
  const w = new TrackWindows(p);
  await w.spill(pcm);
  const msPerFrame = 1000 / OUT_RATE;
  for (const pl of [whole, p]) {
    pl.schedule({ kind: "play", atHostMs: 0, trackId: "late", fromFrame: 0 });
    pl.schedule({ kind: "silence", atHostMs: 500 });
  }
  let h = 0;
  const block = (pl: Player) => pl.render(BLOCK, h, msPerFrame);
  const both = () => [block(whole), block(p)];
  for (; h < 1000; h += BLOCK * msPerFrame) {
    both();
    w.maintain();
    await w.idle();
  }
  // A seek, from silence, told only as its moment comes: nothing of 90 s is in memory yet.
  const seek: Schedule = { kind: "play", atHostMs: h, trackId: "late", fromFrame: 90 * RATE };
  whole.schedule(seek);
  p.schedule(seek);
  const [heard, missed] = both();
  assertTrue(heard.some((v) => v !== 0), "the player holding it whole was silent");
  assertTrue(missed.every((v) => v === 0), "the frames before the window came were not silent");
  assertEquals(p.stats.missedFrames, BLOCK);
  w.maintain();
  await w.idle();
  h += BLOCK * msPerFrame;
  const [a, b] = both();
  assertEquals([...b], [...a], "once its window came, the sound is where it belongs");
  await w.close();
});

Deno.test("track windows: short tracks stay whole; the file is gone from the folder once open", async () => {
  const p = new Player(OUT_RATE);
  const short = track("short", SPILL_MIN_SEC);
  p.addTrack(short);
  const w = new TrackWindows(p);
  await w.spill(short);
  assertTrue(!w.has("short") && !detached(short.left), "a short track was spilled");
  const long = track("long", SPILL_MIN_SEC + WINDOW_SEC);
  p.addTrack(long);
  await w.spill(long);
  assertTrue(w.has("long"));
  // Its folder holds no file: the track's was unlinked as soon as it was open.
  const dir = await w.folder!;
  assertEquals([...Deno.readDirSync(dir)], [], "files left in the track folder");
  w.drop("long");
  p.dropTrack("long");
  await w.close();
  assertTrue(!existsSync(dir), "the folder outlived close()");
});

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("track windows: a track dropped while it is written is let go, nothing breaks", async () => {
  const p = new Player(OUT_RATE);
  const long = track("gone", 100);
  p.addTrack(long);
  const w = new TrackWindows(p, (e) => {
    throw new Error(e);
  });
  const spilling = w.spill(long);
  w.drop("gone");
  p.dropTrack("gone");
  await spilling;
  assertTrue(!w.has("gone") && !p.hasTrack("gone"));
  await w.close();
});
