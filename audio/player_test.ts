import { assertEquals, assertNear, assertThrows, assertTrue } from "../tests/assert.ts";
import { CHANNEL_MODES, type ChannelMode, CLICK_MS, clickAt, type Pcm, Player } from "./player.ts";
import { chirpAt } from "./arrival.ts";

/** A track whose sample value is its own frame index / 1e6: output reveals the position. */
function rampTrack(id: string, frames: number, rateHz = 48000) {
  const left = new Float32Array(frames), right = new Float32Array(frames);
  for (let i = 0; i < frames; i++) left[i] = right[i] = i / 1e6;
  return { id, rateHz, left, right };
}
const MS = 1000 / 48000;
const T = 1.75e12;

Deno.test("play places track frame P at exactly the output frame heard at host time T", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 480000));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  // The block starts 2.5 frames before T: frames 0–2 silent, frame 3 carries P + 0.5.
  const out = p.render(480, T - 2.5 * MS, MS);
  assertEquals(out[0], 0);
  assertEquals(out[4], 0);
  assertNear(out[6] * 1e6, 0.5, 0.01);
  assertNear(out[2 * 100] * 1e6, 97.5, 0.01);
  assertEquals(p.events[0].type, "started");
});

Deno.test("pause at T silences from T on, after a 2 ms fade", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 480000));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 50000, atHostMs: T });
  p.render(480, T, MS);
  p.schedule({ kind: "silence", atHostMs: T + 15 });
  const out = p.render(960, T + 10, MS);
  assertTrue(out[2 * 100] > 0, "still playing before T");
  assertEquals(out[2 * 900], 0, "silent after the fade");
  assertEquals(p.playing, null);
});

Deno.test("a late schedule (joining mid-song) starts at the current position, not at P", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 48000 * 60));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  const out = p.render(480, T + 20_000, MS); // 20 s after the song started
  assertNear(out[0] * 1e6, 20 * 48000, 0.1); // float32 ramp precision
});

Deno.test("drift control pulls a 0.5 ms error to under 0.05 ms within 4 s, without a jump", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 48000 * 60));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  let h = T;
  p.render(480, h, MS);
  h += 10;
  // From now on the device is really 100 ppm slower than first thought, and the clock estimate
  // moved by 0.5 ms: the ideal position jumps but the output must not.
  const ms = MS * (1 + 100e-6);
  let prev = -1, maxStep = 0;
  for (let i = 0; i < 400; i++) {
    const out = p.render(480, h + 0.5, ms);
    for (let k = 0; k < 480; k++) {
      const v = out[2 * k] * 1e6;
      if (prev >= 0) maxStep = Math.max(maxStep, Math.abs(v - prev - 1));
      prev = v;
    }
    h += 480 * ms;
  }
  assertTrue(Math.abs(p.stats.errorMs) < 0.05, `error ${p.stats.errorMs} ms`);
  // float32 ramp values limit this check to ~0.02 frames; a resync would be 24 frames.
  assertTrue(maxStep < 0.05, `position never jumps (largest step deviation ${maxStep} frames)`);
  assertEquals(p.stats.resyncs, 0);
});

Deno.test("an error past 20 ms resyncs at once instead of slewing", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 48000 * 60));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  p.render(480, T, MS);
  const out = p.render(480, T + 10 + 50, MS); // the clock estimate jumped 50 ms
  assertEquals(p.stats.resyncs, 1);
  assertNear(out[2 * 200] * 1e6, (60 * 48000) / 1000 + 200, 0.5);
});

Deno.test("a 44.1 kHz track is resampled: one second of output covers 44100 track frames", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("b", 441000, 44100));
  p.schedule({ kind: "play", trackId: "b", fromFrame: 0, atHostMs: T });
  const out = p.render(48000, T, MS);
  assertNear(out[2 * 47999] * 1e6, 47999 * 44100 / 48000, 0.05);
});

Deno.test("volume and mute scale the output; ended is reported once at the end", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 1000));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  p.setVolume(0.5, false);
  p.render(10, T, MS);
  const out = p.render(100, T + 10 * MS, MS);
  assertNear(out[0] * 1e6, 10 * 0.25, 0.01);
  p.setVolume(0.5, true);
  p.render(100, T + 110 * MS, MS);
  assertEquals(p.render(100, T + 210 * MS, MS)[0], 0);
  p.render(1000, T + 310 * MS, MS);
  assertEquals(p.events.filter((e) => e.type === "ended").length, 1);
});

Deno.test("channel modes: left or right on both outputs, or their mix", () => {
  const left = new Float32Array(4800).fill(0.5), right = new Float32Array(4800).fill(-0.25);
  const frame = (mode: "stereo" | "left" | "right" | "mono") => {
    const p = new Player(48000);
    p.addTrack({ id: "s", rateHz: 48000, left, right });
    p.setChannel(mode);
    p.schedule({ kind: "play", trackId: "s", fromFrame: 0, atHostMs: T });
    const out = p.render(480, T, MS);
    return [out[400], out[401]].map((v) => Math.round(v * 1000) / 1000);
  };
  assertEquals(frame("stereo"), [0.5, -0.25]);
  assertEquals(frame("left"), [0.5, 0.5]);
  assertEquals(frame("right"), [-0.25, -0.25]);
  assertEquals(frame("mono"), [0.125, 0.125]);
});

Deno.test("a new speaker delay moves playback at once (realign), not by slewing", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 48000 * 10));
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  p.render(4800, T, MS);
  // 5 ms of speaker delay: the frame written now must carry content 5 ms later.
  p.realign();
  const out = p.render(480, T + 100 + 5, MS);
  assertNear(out[2 * 200] * 1e6, (105 * 48) + 200, 0.5, "position after realign");
  assertEquals(p.stats.resyncs, 1);
});

Deno.test("a play for a track still loading starts, in sync, once the track arrives", () => {
  const p = new Player(48000);
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  p.render(480, T, MS);
  assertEquals(p.events.map((e) => e.type), ["missing"]);
  assertEquals(p.playing, null);
  p.addTrack(rampTrack("a", 48000 * 60));
  // Loaded 2 s late: it starts at the frame for "now", not at the beginning.
  const out = p.render(480, T + 2000, MS);
  assertNear(out[2 * 240] * 1e6, 2000 * 48 + 240, 0.5, "position after joining late");
  assertEquals(p.events.at(-1)?.type, "started");
});

Deno.test("a track that has ended with nothing after it stays silent: no resync, one ended", () => {
  const p = new Player(48000);
  p.addTrack(rampTrack("a", 4800)); // 0.1 s
  p.schedule({ kind: "play", trackId: "a", fromFrame: 0, atHostMs: T });
  let h = T;
  for (let b = 0; b < 300; b++) { // 3 s of 10 ms blocks past the end of the queue
    const out = p.render(480, h, MS);
    if (b > 11) assertEquals(out.some((v) => v !== 0), false, `silent in block ${b}`);
    h += 480 * MS;
  }
  assertEquals(p.events.filter((e) => e.type === "resync"), []);
  assertEquals(p.events.filter((e) => e.type === "ended").length, 1);
});

/** Seeded noise in ±0.9, and the same as int16 (rounded): what the browser decode gives. */
function noisePair(id: string, frames: number, rateHz: number, seed: number) {
  const side = () => {
    const x = new Float32Array(frames);
    for (let i = 0; i < frames; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      x[i] = (seed / 2 ** 32 - 0.5) * 1.8;
    }
    return x;
  };
  const f: Pcm<Float32Array> = { id, rateHz, left: side(), right: side() };
  const q = (x: Float32Array) => Int16Array.from(x, (v) => Math.round(v * 32768));
  const i: Pcm<Int16Array> = { id, rateHz, left: q(f.left), right: q(f.right) };
  return { f, i };
}

/** Renders the same scripted session with each set of tracks; returns every block. */
function renderSession(tracks: Pcm[], mode: ChannelMode): Float32Array[] {
  const p = new Player(48000);
  for (const t of tracks) p.addTrack(t);
  p.setChannel(mode);
  const blocks: Float32Array[] = [];
  let h = T;
  // Joins mid-track (fade-in), 44.1 kHz (every position fractional), a volume ramp, a switch
  // to the 48 kHz track (crossfade), a resync (crossfade within a track), pause (fade-out).
  p.schedule({ kind: "play", trackId: "a", fromFrame: 12345, atHostMs: T + 1.37 });
  for (let b = 0; b < 120; b++) {
    if (b === 20) p.setVolume(0.6, false);
    if (b === 40) p.schedule({ kind: "play", trackId: "b", fromFrame: 0, atHostMs: h + 3.21 });
    const jump = b >= 70 ? 35 : 0; // the clock estimate moves by 35 ms and stays there
    if (b === 100) p.schedule({ kind: "silence", atHostMs: h + 4.4 });
    const ms = MS * (1 + 120e-6); // a drifting device: the step is never a whole frame
    blocks.push(p.render(480, h + jump, ms));
    h += 480 * ms;
  }
  assertEquals(p.stats.resyncs, 1, "the scripted resync happened");
  return blocks;
}

Deno.test("an int16 track renders like its float version, within 1/32768, in every mode", () => {
  const a = noisePair("a", 44100 * 3, 44100, 7), b = noisePair("b", 48000 * 3, 48000, 11);
  for (const mode of CHANNEL_MODES) {
    const fl = renderSession([a.f, b.f], mode), i16 = renderSession([a.i, b.i], mode);
    let worst = 0, energy = 0, n = 0;
    for (let k = 0; k < fl.length; k++) {
      for (let s = 0; s < fl[k].length; s++) {
        worst = Math.max(worst, Math.abs(fl[k][s] - i16[k][s]));
        energy += fl[k][s] ** 2;
        n++;
      }
    }
    assertTrue(Math.sqrt(energy / n) > 0.1, `${mode}: the session is not mostly silence`);
    assertTrue(worst <= 1 / 32768, `${mode}: int16 differs by ${worst * 32768}/32768`);
  }
});

Deno.test("int16 full scale reads as −1…1 and a track mixing sample types is refused", () => {
  const p = new Player(48000);
  const left = new Int16Array(4800).fill(-32768), right = new Int16Array(4800).fill(16384);
  p.addTrack({ id: "s", rateHz: 48000, left, right });
  p.schedule({ kind: "play", trackId: "s", fromFrame: 0, atHostMs: T });
  const out = p.render(480, T, MS);
  assertEquals([out[400], out[401]], [-1, 0.5]);
  assertThrows(
    () => p.addTrack({ id: "m", rateHz: 48000, left, right: new Float32Array(4800) }),
    /differ in sample type/,
  );
});

/** Output frames where each tick begins: the first sounding frame after ≥ 100 silent ones. */
function tickOnsets(out: Float32Array): number[] {
  const at: number[] = [];
  let quiet = Infinity;
  for (let i = 0; i < out.length / 2; i++) {
    if (out[2 * i] !== 0) {
      if (quiet >= 100) at.push(i);
      quiet = 0;
    } else quiet++;
  }
  return at;
}

/** Renders `seconds` of silence in blocks of `block` frames from host time `h`; joined. */
function renderClicks(p: Player, h: number, ms: number, seconds: number, block: number) {
  const frames = Math.round((seconds * 1000) / ms);
  const out = new Float32Array(frames * 2);
  for (let f = 0; f < frames; f += block) {
    const n = Math.min(block, frames - f);
    out.set(p.render(n, h + f * ms, ms), 2 * f);
  }
  return out;
}

Deno.test("click test: a tick begins on the frame heard at every whole host second", () => {
  for (const [block, ppm] of [[480, 0], [437, 0], [480, 800], [1000, -650]]) {
    const p = new Player(48000);
    p.setClicks(true);
    const ms = MS * (1 + ppm * 1e-6); // drift: the device or the host clock runs off
    const h = T + 123.4567; // no second falls on a frame or a block boundary
    const out = renderClicks(p, h, ms, 4.05, block);
    const onsets = tickOnsets(out);
    const label = `${block}-frame blocks, ${ppm} ppm`;
    assertEquals(onsets.length, 4, label);
    onsets.forEach((f, k) => {
      const exact = (T + 1000 * (k + 1) - h) / ms; // fractional frame of the whole second
      assertTrue(f >= exact && f - exact <= 1, `${label}: tick ${k} at ${f}, second at ${exact}`);
    });
    // Every frame, on both outputs, carries the tick as a function of its own host time: a tick
    // cut by a block boundary goes on where it left off.
    for (let i = 0; i < out.length / 2; i++) {
      const hi = h + (i - (i % block)) * ms + (i % block) * ms; // as render() sums it
      const want = clickAt(hi - Math.floor(hi / 1000) * 1000);
      assertNear(out[2 * i], want, 1e-6, `${label}: frame ${i}`);
      assertEquals(out[2 * i + 1], out[2 * i], `${label}: both outputs`);
    }
  }
});

Deno.test("click test: the tick is a 5 ms burst near −12 dBFS; none while off", () => {
  const p = new Player(48000);
  p.setClicks(true);
  const out = renderClicks(p, T - 10, MS, 0.1, 480);
  let peak = 0, last = -1;
  for (let i = 0; i < out.length / 2; i++) {
    if (out[2 * i] !== 0) last = i;
    peak = Math.max(peak, Math.abs(out[2 * i]));
  }
  assertNear(20 * Math.log10(peak), -12, 1, "peak level (dBFS)");
  const first = tickOnsets(out)[0];
  assertNear((last - first) * MS, CLICK_MS, 0.1, "length (ms)");
  p.setClicks(false);
  assertEquals(renderClicks(p, T + 990, MS, 2.1, 480).some((v) => v !== 0), false, "off");
  const never = new Player(48000);
  assertEquals(renderClicks(never, T - 10, MS, 2.1, 480).some((v) => v !== 0), false, "default");
});

Deno.test("click test: ticks mix over music, in every channel mode, scaled by the volume", () => {
  const left = new Float32Array(48000 * 3).fill(0.1), right = new Float32Array(48000 * 3).fill(0);
  for (const mode of CHANNEL_MODES) {
    const p = new Player(48000);
    p.addTrack({ id: "s", rateHz: 48000, left, right });
    p.setChannel(mode);
    p.setClicks(true);
    p.setVolume(Math.SQRT1_2, false); // gain 0.5
    p.schedule({ kind: "play", trackId: "s", fromFrame: 0, atHostMs: T - 500 });
    p.render(480, T - 500, MS); // the volume ramp is over
    const out = p.render(480, T - 4.5 * MS, MS); // the tick begins 4.5 frames in
    const music = { stereo: [0.1, 0], left: [0.1, 0.1], right: [0, 0], mono: [0.05, 0.05] }[mode];
    for (const i of [2, 5, 100, 400]) {
      const tick = clickAt(T - 4.5 * MS + i * MS - T) * 0.5; // as render() sums host time
      assertNear(out[2 * i], music[0] * 0.5 + tick, 1e-6, `${mode} left, frame ${i}`);
      assertNear(out[2 * i + 1], music[1] * 0.5 + tick, 1e-6, `${mode} right, frame ${i}`);
    }
    assertTrue(Math.abs(out[2 * 10]) > 0.01 + 0.05, `${mode}: the tick is there`);
  }
  // Muted: nothing, ticks included.
  const p = new Player(48000);
  p.setClicks(true);
  p.setVolume(1, true);
  p.render(480, T - 500, MS);
  assertEquals(p.render(480, T - 4.5 * MS, MS).some((v) => v !== 0), false, "muted");
});

Deno.test("click test: ticks follow the speaker delay's realign like music does", () => {
  // The worker renders host time h + speakerDelayMs into the frame heard at h: 30 ms of delay
  // brings each tick 30 ms (1440 frames) earlier in the output.
  const at = (delayMs: number) => {
    const p = new Player(48000);
    p.setClicks(true);
    return tickOnsets(renderClicks(p, T + 500 + delayMs, MS, 1, 480))[0];
  };
  assertEquals(at(0) - at(30), 1440);
});

Deno.test("click test costs little: a 480-frame block with a tick vs without", () => {
  const p = new Player(48000);
  p.addTrack(noisePair("n", 48000 * 95, 44100, 3).f);
  p.schedule({ kind: "play", trackId: "n", fromFrame: 0, atHostMs: T });
  // Continuous playback in 10 ms blocks; only the blocks where a tick falls are timed, on or off.
  const time = (clicks: boolean, from: number) => {
    p.setClicks(clicks);
    let best = Infinity;
    for (let b = 0; b < 3000; b++) {
      const h = T + from + b * 10;
      const t0 = performance.now();
      p.render(480, h - 2, MS);
      const us = (performance.now() - t0) * 1000;
      if (h % 1000 === 0) best = Math.min(best, us);
    }
    return best;
  };
  time(false, 0);
  const off = time(false, 30_000), on = time(true, 60_000);
  console.log(`480 frames: ${off.toFixed(1)} µs without a tick, ${on.toFixed(1)} µs with one`);
  assertTrue(on < off * 2 + 20, `${on} µs with a tick, ${off} µs without`);
});

Deno.test("a calibration probe sounds from its host time, over silence, at any volume", () => {
  const p = new Player(48000);
  p.setVolume(0, true);
  p.playProbe(1010);
  const msPerFrame = 1000 / 48000;
  const out = p.render(48000, 1000, msPerFrame); // host 1000..2000 ms
  for (const i of [0, 479, 480, 481, 2000, 12479, 12480, 20000]) {
    const want = chirpAt(1000 + i * msPerFrame - 1010);
    assertNear(out[2 * i], want, 1e-6, `frame ${i}`);
    assertNear(out[2 * i + 1], want, 1e-6, `frame ${i} right`);
  }
  assertTrue(out.some((v) => Math.abs(v) > 0.3), "loud enough");
  // Played once: the next second is silent.
  assertTrue(p.render(48000, 2000, msPerFrame).every((v) => v === 0));
});
