import type { SinkTiming } from "./sink.ts";

/**
 * Learns the mapping "stream frame → local time" of an audio device from its timing reports,
 * by least squares over a sliding window. The slope is the device's true rate against the
 * local clock: sound-card crystals (and PulseAudio's null sink, 130–300 ppm fast here) are off
 * by up to ±100s of ppm, so the nominal rate is never used for placement.
 * Pure: fed observations, no I/O.
 */
export class DeviceClock {
  #obs: SinkTiming[] = [];
  #fit: { refMs: number; frame: number; framesPerMs: number } | null = null;
  #misses = 0;
  resets = 0;

  constructor(readonly nominalRateHz: number, readonly windowMs = 15_000) {}

  /** Adds an observation; a run of 3 that disagree with the fit by > 2 ms restarts it. */
  add(t: SinkTiming): void {
    const fit = this.#fit;
    if (fit && this.#obs.length >= 8) {
      const errMs = Math.abs(this.localMsOf(t.frame) - t.localMs);
      if (errMs > 2) {
        if (++this.#misses < 3) return;
        this.#obs = [];
        this.resets++;
      }
      this.#misses = 0;
    }
    this.#obs.push(t);
    const oldest = t.localMs - this.windowMs;
    while (this.#obs.length > 2 && this.#obs[0].localMs < oldest) this.#obs.shift();
    if (this.#obs.length > 2000) this.#obs.splice(0, this.#obs.length - 2000);
    this.#refit();
  }

  get ready(): boolean {
    return this.#fit !== null;
  }

  /** Device rate measured against the local clock (Hz). */
  get rateHz(): number {
    return this.#fit ? this.#fit.framesPerMs * 1000 : this.nominalRateHz;
  }

  /** Local time at which stream frame `frame` is heard. */
  localMsOf(frame: number): number {
    const f = this.#fit;
    if (!f) return NaN;
    return f.refMs + (frame - f.frame) / f.framesPerMs;
  }

  #refit(): void {
    const o = this.#obs;
    const n = o.length;
    const last = o[n - 1];
    const nominal = this.nominalRateHz / 1000;
    if (n < 2 || last.localMs - o[0].localMs < 1000) {
      // Too short a baseline for a slope: trust the nominal rate through the latest point.
      this.#fit = { refMs: last.localMs, frame: last.frame, framesPerMs: nominal };
      return;
    }
    let mt = 0, mf = 0;
    for (const p of o) {
      mt += p.localMs - last.localMs;
      mf += p.frame - last.frame;
    }
    mt /= n;
    mf /= n;
    let stt = 0, stf = 0;
    for (const p of o) {
      const dt = p.localMs - last.localMs - mt;
      stt += dt * dt;
      stf += dt * (p.frame - last.frame - mf);
    }
    let slope = stf / stt;
    // A slope more than 1 % off nominal is a broken report, not a crystal.
    if (!(Math.abs(slope / nominal - 1) < 0.01)) slope = nominal;
    this.#fit = { refMs: last.localMs + mt, frame: last.frame + mf, framesPerMs: slope };
  }
}
