import { assertEquals, assertNear, assertTrue } from "../tests/assert.ts";
import { decodeMp3 } from "../audio/decode.ts";
import { readTags, readTrackFile } from "../audio/track_file.ts";
import { PEAK_DBFS, RATE_HZ, SECONDS, synthesizeDemo, TAGS } from "./make_demo.ts";

const DEMO = new URL("./demo.mp3", import.meta.url).pathname;

const decodeDemo = async () => {
  const { bytes, fileName } = await readTrackFile(DEMO);
  return decodeMp3(bytes, { id: "demo", fileName });
};

const dbfs = (x: number) => 20 * Math.log10(x);

Deno.test("the demo track is tagged PhaseLock Demo by PhaseLock, album Built-in", async () => {
  const { bytes, fileName } = await readTrackFile(DEMO);
  const tags = await readTags(bytes, fileName);
  assertEquals([tags.title, tags.artist, tags.album], [TAGS.title, TAGS.artist, TAGS.album]);
  assertEquals([tags.title, tags.artist, tags.album], ["PhaseLock Demo", "PhaseLock", "Built-in"]);
  assertTrue(bytes.length < 400_000, `demo.mp3 is ${bytes.length} bytes; keep it under 400 KB`);
});

Deno.test("the demo track decodes to exactly 20 s of 48 kHz stereo, about −3 dBFS at its peak", async () => {
  const pcm = await decodeDemo();
  assertEquals(pcm.rateHz, 48000);
  assertEquals(pcm.facts.channels, 2);
  // The LAME/Info tag (encoder delay and padding) is what makes the length exact.
  assertTrue(pcm.facts.declaredFrames !== null, "demo.mp3 has no Xing/Info tag");
  assertEquals(pcm.left.length, 20 * 48000);
  assertEquals(pcm.left.length, SECONDS * RATE_HZ);
  let peak = 0;
  for (const ch of [pcm.left, pcm.right]) {
    for (let i = 0; i < ch.length; i++) peak = Math.max(peak, Math.abs(ch[i]));
  }
  assertNear(dbfs(peak), PEAK_DBFS, 0.5, "peak (dBFS)");
  let differs = 0;
  for (let i = 0; i < pcm.left.length; i++) {
    if (Math.abs(pcm.left[i] - pcm.right[i]) > 0.01) differs++;
  }
  assertTrue(differs > pcm.left.length / 10, "the demo is mono: left and right are the same");
});

Deno.test("the demo track is never silent: every quarter second up to its fade has sound", async () => {
  const pcm = await decodeDemo();
  const win = pcm.rateHz / 4;
  const fadeStart = pcm.left.length - pcm.rateHz / 4;
  let quietest = 0;
  for (let at = 0; at + win <= fadeStart; at += win) {
    let sum = 0;
    for (let i = at; i < at + win; i++) sum += pcm.left[i] ** 2 + pcm.right[i] ** 2;
    const level = 10 * Math.log10(sum / (2 * win));
    quietest = at === 0 ? level : Math.min(quietest, level);
  }
  assertTrue(quietest > -40, `a quarter second of the demo is at ${quietest.toFixed(1)} dBFS`);
});

Deno.test("demo.mp3 is what make_demo.ts synthesizes now, frame for frame", async () => {
  // Catches a demo.mp3 left stale after the script changed (another seed, note or pattern),
  // and any offset in decoding: the decoded track matches the synthesized one best at lag 0.
  // Not closer than 0.94: lame's 17 kHz low-pass and 128 kbps take much of the hats' noise.
  const [pcm, made] = [await decodeDemo(), synthesizeDemo()];
  const ncc = (lag: number) => {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 1000; i < made.left.length - 1000; i++) {
      const a = made.left[i] + made.right[i];
      const b = pcm.left[i + lag] + pcm.right[i + lag];
      ab += a * b;
      aa += a * a;
      bb += b * b;
    }
    return ab / Math.sqrt(aa * bb);
  };
  const at0 = ncc(0);
  assertTrue(at0 > 0.9, `demo.mp3 does not match make_demo.ts (correlation ${at0.toFixed(3)})`);
  for (const lag of [-2, -1, 1, 2]) {
    assertTrue(ncc(lag) < at0, `decoded demo is offset by ${lag} frames`);
  }
});
