import { NullSink } from "./null.ts";

/**
 * Writes exactly what would be heard to a 32-bit float stereo WAV file, paced like `null`.
 * Frame k of the file is the frame heard at local time `startMs + k / rate`; that start time
 * is written beside it as `FILE.json` so tests can line up recordings of separate processes.
 */
export class WavSink extends NullSink {
  override readonly backend = "wav" as const;
  override readonly audible = true;
  #file: Deno.FsFile | null = null;
  #dataBytes = 0;

  constructor(readonly path: string, rateHz = 48_000, aheadMs = 60) {
    super(rateHz, aheadMs);
  }

  override async open(): Promise<void> {
    this.#file = await Deno.open(this.path, { write: true, create: true, truncate: true });
    this.#file.writeSync(this.#header(0));
    await super.open();
    await Deno.writeTextFile(
      `${this.path}.json`,
      JSON.stringify({ startMs: this.startMs, rateHz: this.rateHz }),
    );
  }

  override write(interleaved: Float32Array): void {
    super.write(interleaved);
    const bytes = new Uint8Array(
      interleaved.buffer,
      interleaved.byteOffset,
      interleaved.byteLength,
    );
    let done = 0;
    while (done < bytes.length) done += this.#file!.writeSync(bytes.subarray(done));
    this.#dataBytes += bytes.length;
  }

  override async close(): Promise<void> {
    if (!this.#file) return;
    await this.#file.seek(0, Deno.SeekMode.Start);
    this.#file.writeSync(this.#header(this.#dataBytes));
    this.#file.close();
    this.#file = null;
  }

  #header(dataBytes: number): Uint8Array {
    const h = new DataView(new ArrayBuffer(44));
    const ascii = (at: number, s: string) =>
      [...s].forEach((c, i) => h.setUint8(at + i, c.charCodeAt(0)));
    ascii(0, "RIFF");
    h.setUint32(4, 36 + dataBytes, true);
    ascii(8, "WAVE");
    ascii(12, "fmt ");
    h.setUint32(16, 16, true);
    h.setUint16(20, 3, true); // IEEE float
    h.setUint16(22, 2, true);
    h.setUint32(24, this.rateHz, true);
    h.setUint32(28, this.rateHz * 8, true);
    h.setUint16(32, 8, true);
    h.setUint16(34, 32, true);
    ascii(36, "data");
    h.setUint32(40, dataBytes, true);
    return new Uint8Array(h.buffer);
  }
}
