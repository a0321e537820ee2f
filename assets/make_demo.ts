/**
 * Makes `assets/demo.mp3`, the built-in demo track, entirely from this file: 20 s of a
 * 120 bpm pop loop (C–G–Am–F on an electric piano, bass, a bell arpeggio, kick, clap and
 * hi-hats) at 48 kHz stereo, synthesized here, then encoded by `lame` at 128 kbps CBR with
 * its LAME/Info tag (encoder delay and padding: the decoder needs them to give back exactly
 * the frames written) and ID3v2 tags.
 *
 *     deno run -A assets/make_demo.ts [OUT.mp3]
 *
 * Deterministic: a seeded generator stands in for randomness, so the same lame (3.100 here)
 * makes the same bytes. Mixed drum-forward for cross-correlation: in 0.25 s windows searched
 * ±50 ms (tests/harness/xcorr.ts) the lag-0 peak is 1 and the next best, at bass-note periods,
 * 0.66 median and 0.76 at worst (a mix with twice the bass: 0.72 and 0.82; the pink-noise
 * test tracks: 0.27 and 0.44). The random hat accents and the per-bar arpeggio keep whole
 * bars from repeating exactly.
 */

import { decodeMp3 } from "../audio/decode.ts";
import { seededRandom } from "../net/link_model.ts";

export const RATE_HZ = 48000;
export const BPM = 120;
export const SECONDS = 20;
/** Peak level of the mix: −3 dBFS leaves the encoder room for its overshoot. */
export const PEAK_DBFS = -3;
export const TAGS = { title: "PhaseLock Demo", artist: "PhaseLock", album: "Built-in" };

const BEAT_SEC = 60 / BPM;
const BAR_SEC = 4 * BEAT_SEC;

/** Chord per half bar (MIDI notes, voiced close for smooth movement) and its bass root. */
interface Chord {
  notes: number[];
  root: number;
}
const C: Chord = { notes: [60, 64, 67], root: 36 };
const G: Chord = { notes: [59, 62, 67], root: 43 };
const AM: Chord = { notes: [60, 64, 69], root: 45 };
const F: Chord = { notes: [60, 65, 69], root: 41 };
/** Ten bars, two halves each: I–V–vi–IV twice, a IV–V turnaround, home. */
const HALF_BARS: Chord[] = [
  ...[C, C, G, G, AM, AM, F, F],
  ...[C, C, G, G, AM, AM, F, F],
  ...[F, G],
  ...[C, C],
];

const hz = (midi: number) => 440 * 2 ** ((midi - 69) / 12);

/** A stereo buffer that voices are added into at a time in seconds, with a pan. */
class Mix {
  readonly left: Float32Array;
  readonly right: Float32Array;
  constructor(readonly frames: number) {
    this.left = new Float32Array(frames);
    this.right = new Float32Array(frames);
  }

  /** Adds `voice(t)` for `t` in [0, durSec) starting at `atSec`; pan −1 (left) … 1 (right). */
  add(atSec: number, durSec: number, pan: number, voice: (t: number) => number) {
    const start = Math.round(atSec * RATE_HZ);
    const end = Math.min(this.frames, start + Math.round(durSec * RATE_HZ));
    // Constant-power pan.
    const gl = Math.cos((pan + 1) * Math.PI / 4);
    const gr = Math.sin((pan + 1) * Math.PI / 4);
    for (let i = start; i < end; i++) {
      const v = voice((i - start) / RATE_HZ);
      this.left[i] += gl * v;
      this.right[i] += gr * v;
    }
  }
}

/** 0 → 1 over `attackSec`, then 1; times a linear fade to 0 over the last `releaseSec`. */
function gate(t: number, durSec: number, attackSec: number, releaseSec: number): number {
  const a = t < attackSec ? t / attackSec : 1;
  const r = t > durSec - releaseSec ? Math.max(0, (durSec - t) / releaseSec) : 1;
  return a * r;
}

function kick(mix: Mix, at: number, rnd: () => number, level: number) {
  // A falling sine (the thump) plus a 3 ms noise click (the edge cross-correlation locks to).
  let phase = 0;
  mix.add(at, 0.3, 0, (t) => {
    phase += 2 * Math.PI * (50 + 130 * Math.exp(-t / 0.03)) / RATE_HZ;
    const click = t < 0.003 ? (rnd() * 2 - 1) * (1 - t / 0.003) : 0;
    return level * (Math.sin(phase) * Math.exp(-t / 0.09) * gate(t, 0.3, 0.0005, 0.02) + click);
  });
}

function clap(mix: Mix, at: number, rnd: () => number, level: number) {
  // High-passed noise with three quick re-strikes (a hand clap), over a short 190 Hz body.
  let prev = 0;
  mix.add(at, 0.25, 0.1, (t) => {
    const n = rnd() * 2 - 1;
    const hp = n - prev;
    prev = n;
    const strike = [0, 0.009, 0.018].reduce((s, d) => t >= d ? Math.exp(-(t - d) / 0.006) : s, 0);
    const tail = Math.exp(-t / 0.07);
    const body = Math.sin(2 * Math.PI * 190 * t) * Math.exp(-t / 0.04) * 0.5;
    return level * (hp * 0.5 * Math.max(strike, tail * 0.6) + body) * gate(t, 0.25, 0, 0.02);
  });
}

function hat(mix: Mix, at: number, rnd: () => number, level: number, decaySec = 0.018) {
  // Twice-differenced noise: most of its energy above 8 kHz.
  let p1 = 0, p2 = 0;
  const durSec = decaySec * 4.5;
  mix.add(at, durSec, 0.35, (t) => {
    const n = rnd() * 2 - 1;
    const hp = n - 2 * p1 + p2;
    p2 = p1;
    p1 = n;
    return level * 0.25 * hp * Math.exp(-t / decaySec) * gate(t, durSec, 0, 0.01);
  });
}

/** A shaker: once-differenced noise, softer and longer than a hat, panned left. */
function shaker(mix: Mix, at: number, rnd: () => number, level: number) {
  let p = 0;
  mix.add(at, 0.12, -0.4, (t) => {
    const n = rnd() * 2 - 1;
    const hp = n - p;
    p = n;
    return level * 0.5 * hp * Math.min(1, t / 0.01) * Math.exp(-t / 0.035) * gate(t, 0.12, 0, 0.02);
  });
}

function bass(mix: Mix, at: number, durSec: number, midi: number, level: number) {
  const f = hz(midi);
  mix.add(at, durSec, 0, (t) => {
    const w = 2 * Math.PI * f * t;
    const tone = Math.sin(w) + 0.35 * Math.sin(2 * w) + 0.12 * Math.sin(3 * w);
    return level * tone * Math.exp(-t / 0.16) * gate(t, durSec, 0.004, 0.03);
  });
}

/** An electric piano: a few harmonics, the higher ones dying faster; detuned wide in stereo. */
function piano(mix: Mix, at: number, durSec: number, midi: number, level: number) {
  for (const [pan, detune] of [[-0.7, 0.9985], [0.7, 1.0015]]) {
    const f = hz(midi) * detune;
    mix.add(at, durSec, pan, (t) => {
      let s = 0;
      for (const [k, a] of [[1, 1], [2, 0.45], [3, 0.2], [4, 0.1]]) {
        s += a * Math.sin(2 * Math.PI * k * f * t) * Math.exp(-t * (0.8 + 1.6 * k));
      }
      return level * s * gate(t, durSec, 0.006, 0.04);
    });
  }
}

function bell(mix: Mix, at: number, midi: number, pan: number, level: number) {
  const f = hz(midi);
  mix.add(at, 0.6, pan, (t) => {
    const w = 2 * Math.PI * f * t;
    const s = Math.sin(w) + 0.3 * Math.sin(2 * w) * Math.exp(-t / 0.08) +
      0.12 * Math.sin(3 * w) * Math.exp(-t / 0.05);
    return level * s * Math.exp(-t / 0.22) * gate(t, 0.6, 0.002, 0.05);
  });
}

/** The whole track as float samples, peak at {@link PEAK_DBFS}. */
export function synthesizeDemo(): { rateHz: number; left: Float32Array; right: Float32Array } {
  const mix = new Mix(SECONDS * RATE_HZ);
  const rnd = seededRandom(0x5eed);
  const bars = HALF_BARS.length / 2;
  const lastBar = bars - 1;

  for (let bar = 0; bar < bars; bar++) {
    const t0 = bar * BAR_SEC;
    for (let beat = 0; beat < 4; beat++) {
      const tb = t0 + beat * BEAT_SEC;
      const chord = HALF_BARS[bar * 2 + (beat >> 1)];
      kick(mix, tb, rnd, 0.8);
      if (beat % 2 === 1) clap(mix, tb, rnd, 0.8);
      // Off-beat hats louder and open, with a random accent so no two bars are alike; a
      // shaker on every sixteenth keeps broadband sound between the drums.
      hat(mix, tb, rnd, 0.5 + 0.2 * rnd());
      hat(mix, tb + BEAT_SEC / 2, rnd, 0.8 + 0.3 * rnd(), 0.04);
      for (let q = 0; q < 4; q++) shaker(mix, tb + q * BEAT_SEC / 4, rnd, 0.1 + 0.1 * rnd());
      // Bass: root on the beat, its octave on the "and" of beat 4.
      bass(mix, tb, BEAT_SEC * (beat === 3 ? 0.5 : 0.95), chord.root, 0.15);
      if (beat === 3 && bar !== lastBar) {
        bass(mix, tb + BEAT_SEC / 2, BEAT_SEC * 0.45, chord.root + 12, 0.13);
      }
    }
    // Piano: strikes on 1, the "and" of 2, and 4 (a pop push); the last bar rings out.
    const strikes = bar === lastBar ? [[0, 4]] : [[0, 1.5], [1.5, 1.5], [3, 1]];
    for (const [beat, lenBeats] of strikes) {
      const chord = HALF_BARS[bar * 2 + (beat >= 2 ? 1 : 0)];
      for (const n of chord.notes) {
        piano(mix, t0 + beat * BEAT_SEC, lenBeats * BEAT_SEC, n, 0.065);
      }
    }
    // Bell arpeggio in eighths over the chord, an octave up, its own random walk per bar;
    // it rests in the first two bars (an intro) and the last one.
    if (bar >= 2 && bar !== lastBar) {
      let step = Math.floor(rnd() * 3);
      for (let e = 0; e < 8; e++) {
        const chord = HALF_BARS[bar * 2 + (e >= 4 ? 1 : 0)];
        const tones = [...chord.notes.map((n) => n + 12), chord.notes[0] + 24];
        step = Math.max(0, Math.min(tones.length - 1, step + (rnd() < 0.5 ? -1 : 1)));
        if (e === 7 && rnd() < 0.5) continue; // breathe
        bell(mix, t0 + e * BEAT_SEC / 2, tones[step], e % 2 ? 0.45 : -0.45, 0.16);
      }
    }
  }

  // Fade out the very end (the last kick and chord's tails) so the file ends at silence.
  const fadeFrames = Math.round(0.25 * RATE_HZ);
  for (let i = 0; i < fadeFrames; i++) {
    const g = i / fadeFrames;
    mix.left[mix.frames - 1 - i] *= g;
    mix.right[mix.frames - 1 - i] *= g;
  }
  let peak = 0;
  for (let i = 0; i < mix.frames; i++) {
    peak = Math.max(peak, Math.abs(mix.left[i]), Math.abs(mix.right[i]));
  }
  const g = 10 ** (PEAK_DBFS / 20) / peak;
  for (let i = 0; i < mix.frames; i++) {
    mix.left[i] *= g;
    mix.right[i] *= g;
  }
  return { rateHz: RATE_HZ, left: mix.left, right: mix.right };
}

/**
 * 16-bit PCM WAV of `pcm` times `gain`, with triangular dither (deterministic, from the seeded
 * generator).
 */
export function encodeWav(
  pcm: { rateHz: number; left: Float32Array; right: Float32Array },
  gain = 1,
): Uint8Array {
  const frames = pcm.left.length;
  const bytes = new Uint8Array(44 + frames * 4);
  const v = new DataView(bytes.buffer);
  const text = (at: number, s: string) =>
    [...s].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF");
  v.setUint32(4, 36 + frames * 4, true);
  text(8, "WAVE");
  text(12, "fmt ");
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 2, true);
  v.setUint32(24, pcm.rateHz, true);
  v.setUint32(28, pcm.rateHz * 4, true);
  v.setUint16(32, 4, true);
  v.setUint16(34, 16, true);
  text(36, "data");
  v.setUint32(40, frames * 4, true);
  const rnd = seededRandom(0xd1e);
  for (let i = 0; i < frames; i++) {
    for (const [ch, x] of [[0, pcm.left[i]], [1, pcm.right[i]]]) {
      const s = Math.round(x * gain * 32767 + rnd() - rnd());
      v.setInt16(44 + i * 4 + ch * 2, Math.max(-32768, Math.min(32767, s)), true);
    }
  }
  return bytes;
}

async function lame(wavPath: string, mp3Path: string): Promise<void> {
  const args = [
    ...["--quiet", "--cbr", "-b", "128", "-q", "2", "-T"],
    ...["--id3v2-only", "--tt", TAGS.title, "--ta", TAGS.artist, "--tl", TAGS.album],
    ...[wavPath, mp3Path],
  ];
  const out = await new Deno.Command("lame", { args, stdout: "null", stderr: "piped" })
    .output()
    .catch((e) => {
      throw new Error(`Making the demo track needs lame (apt-get install lame): ${e.message}`);
    });
  if (!out.success) {
    throw new Error(`lame failed: ${new TextDecoder().decode(out.stderr).slice(-400)}`);
  }
}

/** Peak (dBFS) of an MP3 as the player decodes it. */
async function decodedPeakDbfs(mp3Path: string): Promise<number> {
  const pcm = await decodeMp3(await Deno.readFile(mp3Path), { id: "demo", fileName: "demo.mp3" });
  let peak = 0;
  for (const ch of [pcm.left, pcm.right]) {
    for (let i = 0; i < ch.length; i++) peak = Math.max(peak, Math.abs(ch[i]));
  }
  return 20 * Math.log10(peak);
}

/**
 * Synthesizes the track and encodes it to `outPath` with `lame`, twice: the encoder's 17 kHz
 * low-pass rounds off the drums' clicks (the first pass peaks about 2 dB low), so the second pass
 * is scaled by what the first one lost. Returns the decoded peak.
 */
export async function makeDemo(outPath: string): Promise<{ peakDbfs: number }> {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-demo-" });
  try {
    const pcm = synthesizeDemo();
    const wav = `${dir}/demo.wav`;
    const mp3 = `${dir}/demo.mp3`;
    await Deno.writeFile(wav, encodeWav(pcm));
    await lame(wav, mp3);
    const gain = 10 ** ((PEAK_DBFS - await decodedPeakDbfs(mp3)) / 20);
    await Deno.writeFile(wav, encodeWav(pcm, gain));
    await lame(wav, mp3);
    const peakDbfs = await decodedPeakDbfs(mp3);
    await Deno.copyFile(mp3, outPath);
    return { peakDbfs };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const out = Deno.args[0] ?? new URL("./demo.mp3", import.meta.url).pathname;
  const { peakDbfs } = await makeDemo(out);
  console.log(
    `Wrote ${out} (${(await Deno.stat(out)).size} bytes, peak ${peakDbfs.toFixed(2)} dBFS)`,
  );
}
