/**
 * The one interface every audio backend implements (`audio/sinks/*.ts`). A sink is a stream
 * of interleaved stereo float frames at {@link AudioSink.rateHz}, opened once and kept running
 * (writing silence) for the life of the session: PulseAudio drops the first 0–10 ms of every
 * new stream, so "start a stream at time T" can never be accurate.
 *
 * Placement is by sample position: a sink reports which of its frames is being heard at which
 * local time ({@link AudioSink.timing}); the player decides what goes into each frame.
 */
export interface SinkTiming {
  /** Stream frame index (0 = first frame ever written) heard at `localMs`. May be fractional. */
  frame: number;
  /** Local clock (`performance.timeOrigin + performance.now()`), ms. */
  localMs: number;
}

export interface AudioSink {
  readonly backend: SinkBackend;
  readonly rateHz: number;
  /** False for sinks that play nowhere (null): the user is told they will not hear anything. */
  readonly audible: boolean;
  open(): Promise<void>;
  /** Frames that can be written now without blocking and without exceeding the write-ahead. */
  writableFrames(): number;
  /** Appends interleaved stereo frames at the stream's write position. */
  write(interleaved: Float32Array): void;
  /** Latest observation of the play position, or null before the first one. */
  timing(): SinkTiming | null;
  close(): Promise<void>;
}

export type SinkBackend = "pulse" | "portaudio" | "null" | "wav";
export const SINK_BACKENDS: readonly SinkBackend[] = ["pulse", "portaudio", "null", "wav"];

export class AudioDeviceError extends Error {
  override name = "AudioDeviceError";
}

/** Local wall clock in ms with sub-ms resolution; agrees across processes to ~0.01 ms. */
export function realNowMs(): number {
  return performance.timeOrigin + performance.now();
}
