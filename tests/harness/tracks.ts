/**
 * Test tracks made on the fly with sox and lame: pink noise with a slow tremolo, so that
 * cross-correlation between devices has one clear peak and no period.
 */
async function runTool(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output()
    .catch((e) => {
      throw new Error(`Making test tracks needs ${cmd}: ${e.message}`);
    });
  if (!out.success) {
    throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr).slice(-400)}`);
  }
}

/**
 * Writes a 48 kHz stereo noise MP3 to `mp3`; `leftOnly` leaves the right channel silent;
 * `steady` leaves out the tremolo (a constant level, so a change of track shows as a step);
 * `gainDb` sets the level (default −6 dB).
 */
export async function makeNoiseMp3(
  mp3: string,
  seconds: number,
  opts: { leftOnly?: boolean; kbps?: number; steady?: boolean; gainDb?: number } = {},
): Promise<void> {
  const wav = `${mp3}.wav`;
  await runTool("sox", [
    ...["-n", "-r", "48000", "-c", "2", "-b", "16", wav, "synth", String(seconds), "pinknoise"],
    ...(opts.steady ? [] : ["tremolo", "1.7", "60"]),
    ...["gain", String(opts.gainDb ?? -6), ...(opts.leftOnly ? ["remix", "1", "0"] : [])],
  ]);
  const kbps = String(opts.kbps ?? 128);
  await runTool("lame", ["--quiet", "-b", kbps, "--resample", "48", wav, `${mp3}.tmp`]);
  await Deno.rename(`${mp3}.tmp`, mp3);
  await Deno.remove(wav);
}
