import { assertEquals, assertTrue } from "../tests/assert.ts";
import { makeNoiseMp3 } from "../tests/harness/tracks.ts";
import { decodeMp3 } from "./decode.ts";
import { Player, type Schedule } from "./player.ts";
import { TrackStream } from "./track_stream.ts";

/**
 * The stream's window against the whole-file decode: the first index where they differ by more
 * than one step of 16 bits (a decoder started mid-file agrees to ~1e-7, which can round either
 * way).
 */
function mismatch(s: TrackStream, whole: { left: Int16Array; right: Int16Array }): number {
  const p = s.pcm;
  for (let k = p.offset; k < s.end; k++) {
    const i = k - p.offset;
    if (Math.abs(p.left[i] - whole.left[k]) > 1 || Math.abs(p.right[i] - whole.right[k]) > 1) {
      return k;
    }
  }
  return -1;
}

async function pumped(s: TrackStream, need: number, budget = 1e9) {
  s.pump(need, budget);
  await s.started;
  s.pump(need, budget);
}

async function track(name: string, seconds: number, lameArgs: string[] = []) {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-stream-" });
  const path = `${dir}/${name}.mp3`;
  if (lameArgs.length === 0) await makeNoiseMp3(path, seconds);
  else {
    await makeNoiseMp3(`${dir}/src.mp3`, seconds);
    const wav = `${dir}/src.wav`;
    const run = async (cmd: string, args: string[]) => {
      const o = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
      if (!o.success) throw new Error(`${cmd}: ${new TextDecoder().decode(o.stderr)}`);
    };
    await run("lame", ["--quiet", "--decode", `${dir}/src.mp3`, wav]);
    await run("lame", ["--quiet", ...lameArgs, wav, path]);
  }
  const bytes = await Deno.readFile(path);
  await Deno.remove(dir, { recursive: true });
  const whole = await decodeMp3(bytes, { id: name, fileName: name, format: "int16" });
  return { bytes, whole };
}

for (
  const [name, args] of [
    ["48 kHz, 128 kbit/s", []],
    ["44.1 kHz, 64 kbit/s (a deep bit reservoir), with an ID3v2 tag", [
      ...["--resample", "44.1", "-b", "64", "--add-id3v2", "--tt", "Stream test"],
    ]],
  ] as const
) {
  Deno.test(`a streamed track is the whole-file decode to a 16-bit step, wherever it plays or seeks: ${name}`, async () => {
    const { bytes, whole } = await track("t", 30, [...args]);
    const rate = whole.rateHz, frames = whole.left.length;
    const s = await TrackStream.open(bytes, { id: "t", rateHz: rate, frames });
    assertTrue(s !== null, "the track streams");
    // From the start, playing through in 0.25 s steps with a budget of 0.2 s per step.
    await pumped(s, 0);
    assertEquals(s.pcm.offset, 0);
    assertEquals(mismatch(s, whole), -1, "the first window");
    for (let need = 0; need < 20 * rate; need += rate / 4) {
      s.pump(need, rate / 5);
      assertTrue(s.pcm.offset <= need && s.end > need + rate, `window at ${need / rate} s`);
    }
    assertEquals(mismatch(s, whole), -1, "after playing through");
    // Seeks: forward, backward, near the start, to the end.
    for (const sec of [25.3, 7.77, 0.4, 16]) {
      const need = Math.floor(sec * rate);
      await pumped(s, need);
      assertTrue(s.pcm.offset <= need && s.end > need, `window covers ${sec} s`);
      assertEquals(mismatch(s, whole), -1, `after a seek to ${sec} s`);
    }
    await pumped(s, frames - 10);
    assertEquals(s.end, frames, "decoded to the last sample");
    assertEquals(mismatch(s, whole), -1, "at the end");
    // Its samples: a window of about 12 s, whatever the track's length.
    assertTrue(s.pcm.left.length <= 12 * rate + 1, `${s.pcm.left.length} samples kept`);
    s.free();
  });
}

Deno.test("a track too short to stream is left to the whole-file decode", async () => {
  const { bytes, whole } = await track("short", 2);
  const s = await TrackStream.open(bytes, {
    id: "s",
    rateHz: whole.rateHz,
    frames: whole.left.length,
  });
  assertEquals(s, null);
});

Deno.test("a player reading a streamed track plays what it plays from the whole track: play, pause, resume, seek back and forth", async () => {
  const { bytes, whole } = await track("p", 12);
  const rate = whole.rateHz;
  const s = await TrackStream.open(bytes, { id: "p", rateHz: rate, frames: whole.left.length });
  assertTrue(s !== null, "the track streams");
  s.pump(0, 2 * rate);
  await s.started;
  const a = new Player(rate), b = new Player(rate);
  a.addTrack({ ...whole, id: "p" });
  b.addTrack(s.pcm);
  const msPerFrame = 1000 / rate, block = 480;
  const schedules: Schedule[] = [
    { kind: "play", atHostMs: 100, trackId: "p", fromFrame: 0 },
    { kind: "silence", atHostMs: 3100 },
    { kind: "play", atHostMs: 4300, trackId: "p", fromFrame: 3 * rate },
    { kind: "play", atHostMs: 6300, trackId: "p", fromFrame: 1.5 * rate },
    { kind: "play", atHostMs: 8800, trackId: "p", fromFrame: 9 * rate },
  ];
  let worst = 0, heard = 0;
  for (let h = 0, i = 0; h < 11_000; h += block * msPerFrame) {
    // Schedules reach the devices a lead ahead (here 150 ms), as the host sends them.
    while (i < schedules.length && schedules[i].atHostMs <= h + 150) {
      a.schedule(schedules[i]);
      b.schedule(schedules[i++]);
    }
    for (const [, need] of b.needs(h)) s.pump(need.at, rate / 4, need.upcoming);
    await Promise.resolve();
    const x = a.render(block, h, msPerFrame), y = b.render(block, h, msPerFrame);
    for (let k = 0; k < x.length; k++) {
      worst = Math.max(worst, Math.abs(x[k] - y[k]));
      if (Math.abs(x[k]) > 0.01) heard++;
    }
    await s.started;
  }
  assertTrue(heard > 7 * rate, `sound for ${heard / rate / 2} s`);
  assertTrue(worst < 1e-4, `largest difference ${worst}`);
  s.free();
});

Deno.test("a late joiner's streamed track starts where the others are and plays on, though its decoder starts asynchronously", async () => {
  const { bytes, whole } = await track("late", 12);
  const rate = whole.rateHz;
  const s = await TrackStream.open(bytes, { id: "late", rateHz: rate, frames: whole.left.length });
  assertTrue(s !== null, "the track streams");
  const a = new Player(rate), b = new Player(rate);
  a.addTrack({ ...whole, id: "late" });
  const play: Schedule = { kind: "play", atHostMs: -5000, trackId: "late", fromFrame: 0 };
  a.schedule(play);
  b.schedule(play); // before the track is there: it waits
  b.addTrack(s.pcm);
  const msPerFrame = 1000 / rate, block = 480;
  let same = 0, blocks = 0;
  for (let h = 0; h < 3000; h += block * msPerFrame, blocks++) {
    for (const [, need] of b.needs(h)) s.pump(need.at, rate / 4, need.upcoming);
    const x = a.render(block, h, msPerFrame), y = b.render(block, h, msPerFrame);
    let worst = 0;
    for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(x[k] - y[k]));
    if (worst < 1e-4) same++;
    // The decoder starts between blocks, as it does in the audio thread.
    await new Promise((r) => setTimeout(r, 0));
  }
  // Silent at first while its decoder starts, then sample for sample what the whole track plays.
  assertTrue(same >= blocks - 10, `${same} of ${blocks} blocks as from the whole track`);
  s.free();
});
