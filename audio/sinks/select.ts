import { type AudioSink, type SinkBackend } from "../sink.ts";
import { NullSink } from "./null.ts";
import { PulseSink } from "./pulse.ts";
import { PortAudioSink } from "./portaudio.ts";
import { WavSink } from "./wav.ts";

export interface SinkChoice {
  /** "auto" picks pulse on Linux and portaudio elsewhere, falling back to null. */
  backend: SinkBackend | "auto";
  /** Output file for the wav backend. */
  wavPath?: string;
  rateHz?: number;
}

export function createSink(backend: SinkBackend, choice: SinkChoice): AudioSink {
  const rate = choice.rateHz ?? 48_000;
  switch (backend) {
    case "pulse":
      return new PulseSink(rate);
    case "portaudio":
      return new PortAudioSink(rate);
    case "wav":
      if (!choice.wavPath) throw new TypeError("the wav backend needs an output file (--wav-out)");
      return new WavSink(choice.wavPath, rate);
    case "null":
      return new NullSink(rate);
  }
}

/**
 * Opens the chosen backend, or for "auto" the first that works. Returns the sink and, when it
 * had to fall back to `null`, the reason the audible ones failed.
 */
export async function openSink(choice: SinkChoice): Promise<{ sink: AudioSink; failure?: string }> {
  const order: SinkBackend[] = choice.backend !== "auto"
    ? [choice.backend]
    : Deno.build.os === "linux"
    ? ["pulse", "portaudio"]
    : ["portaudio"];
  const reasons: string[] = [];
  for (const b of order) {
    const sink = createSink(b, choice);
    try {
      await sink.open();
      return { sink };
    } catch (e) {
      reasons.push(`${b}: ${(e as Error).message}`);
      await sink.close().catch(() => {});
    }
  }
  const sink = new NullSink(choice.rateHz ?? 48_000);
  await sink.open();
  return { sink, failure: reasons.join("; ") };
}
