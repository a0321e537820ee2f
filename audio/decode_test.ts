import {
  assertEquals,
  assertNear,
  assertRejects,
  assertThrows,
  assertTrue,
} from "../tests/assert.ts";
import { DecodeError, decodeMp3 } from "./decode.ts";
import { decodeMp3Apart } from "./decode_native.ts";
import { MAX_FILE_BYTES, parseHeader, scanMp3 } from "./mp3_scan.ts";

const fixture = (name: string) =>
  Deno.readFileSync(new URL(`../tests/fixtures/${name}`, import.meta.url));

Deno.test("scanMp3() reads rate, channels and duration from real LAME output", () => {
  const f = scanMp3(fixture("noise48k.mp3"));
  assertEquals(f.rateHz, 48000);
  assertEquals(f.channels, 2);
  assertNear(f.durationSec, 12, 0.05);
  assertTrue(f.declaredFrames !== null, "LAME writes an Info tag");
  assertEquals(scanMp3(fixture("tones44k.mp3")).rateHz, 44100);
});

Deno.test("scanMp3() refuses empty, renamed, truncated and oversized files with a reason", () => {
  assertThrows(() => scanMp3(new Uint8Array()), /empty/);
  assertThrows(() => scanMp3(fixture("notaudio.mp3")), /no MPEG audio frames/);
  assertThrows(() => scanMp3(new Uint8Array(MAX_FILE_BYTES + 1)), /limit is 50 MB/);
  const whole = fixture("noise48k.mp3");
  assertThrows(() => scanMp3(whole.subarray(0, 40000)), /truncated/);
  // Cut exactly on a frame boundary: only the Info tag's frame count can tell.
  let at = 0, cut = 0;
  while (at < 60000) {
    const h = parseHeader(whole, at);
    if (!h) {
      at++;
      continue;
    }
    cut = at;
    at += h.bytes;
  }
  assertThrows(() => scanMp3(whole.subarray(0, cut)), /truncated/);
});

Deno.test("scanMp3() does not mistake random bytes for audio (fuzz)", () => {
  let seed = 42;
  for (let n = 0; n < 200; n++) {
    const b = new Uint8Array(2000 + (n * 37) % 5000);
    for (let i = 0; i < b.length; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    try {
      scanMp3(b);
    } catch (e) {
      assertEquals((e as Error).name, "Mp3FormatError");
    }
  }
});

Deno.test("decodeMp3() decodes sample-exact length and names the file when it refuses", async () => {
  const pcm = await decodeMp3(fixture("noise48k.mp3"), { id: "x", fileName: "noise48k.mp3" });
  assertEquals(pcm.rateHz, 48000);
  assertEquals(pcm.left.length, 12 * 48000, "gapless decode of a LAME file is sample-exact");
  await assertRejects(
    () => decodeMp3(fixture("truncated.mp3"), { id: "x", fileName: "truncated.mp3" }),
    /Cannot use "truncated.mp3": the file is truncated/,
  );
});

Deno.test("decodeMp3() to int16 gives the float decode rounded and clamped, sample for sample", async () => {
  for (const name of ["noise48k.mp3", "tones44k.mp3"]) {
    const bytes = fixture(name);
    const f = await decodeMp3(bytes, { id: "x", fileName: name });
    const i = await decodeMp3(bytes, { id: "x", fileName: name, format: "int16" });
    assertTrue(f.left instanceof Float32Array && i.left instanceof Int16Array, "sample types");
    assertTrue(i.right instanceof Int16Array, "both channels are int16");
    assertEquals([i.rateHz, i.left.length, i.right.length], [
      f.rateHz,
      f.left.length,
      f.left.length,
    ]);
    let mismatches = 0, worst = 0;
    for (const [fs, is] of [[f.left, i.left], [f.right, i.right]] as const) {
      for (let k = 0; k < fs.length; k++) {
        const want = Math.max(-32768, Math.min(32767, Math.round(fs[k] * 32768)));
        if (is[k] !== want) mismatches++;
        if (Math.abs(fs[k]) < 32767 / 32768) {
          worst = Math.max(worst, Math.abs(is[k] / 32768 - fs[k]));
        }
      }
    }
    assertEquals(mismatches, 0, `${name}: int16 samples that are not the rounded float`);
    assertTrue(worst <= 0.5 / 32768, `${name}: int16 is ${worst * 32768}/32768 off the float`);
  }
});

Deno.test({
  name: "decodeMp3Apart() decodes on a thread of its own to exactly decodeMp3()'s samples; " +
    "refusals keep their class and sentence; an abort stops it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const bytes = fixture("noise48k.mp3");
    const here = await decodeMp3(bytes, { id: "n", fileName: "noise.mp3", format: "int16" });
    const apart = await decodeMp3Apart(bytes, { id: "n", fileName: "noise.mp3" });
    assertEquals(apart.rateHz, here.rateHz);
    assertEquals(apart.left.length, here.left.length);
    assertTrue(apart.left instanceof Int16Array, "int16 samples");
    assertTrue(
      apart.left.every((v, i) => v === here.left[i]) &&
        apart.right.every((v, i) => v === here.right[i]),
      "the samples differ",
    );
    assertEquals(bytes.length > 0, true, "the caller's bytes are kept (copied, not moved)");
    let refusedHere = "";
    await decodeMp3(fixture("notaudio.mp3"), { id: "x", fileName: "x.mp3" }).catch((e) =>
      refusedHere = `${e.name}: ${e.message}`
    );
    const refused = await decodeMp3Apart(fixture("notaudio.mp3"), { id: "x", fileName: "x.mp3" })
      .then(() => null, (e) => e);
    assertTrue(refused instanceof DecodeError, `not a DecodeError: ${refused}`);
    assertEquals(`${refused.name}: ${refused.message}`, refusedHere);
    const stop = new AbortController();
    const aborted = decodeMp3Apart(bytes, { id: "n", fileName: "noise.mp3", signal: stop.signal });
    stop.abort(new Error("the track was removed"));
    await assertRejects(() => aborted, /the track was removed/);
  },
});
