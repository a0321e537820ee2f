/**
 * A private PulseAudio daemon for tests and benchmarks: one null sink `bus` with one channel
 * per simulated device, and a remap sink `devK` per device feeding channel auxK. Recording the
 * bus monitor gives every device's output in one stream, so the recorder's own timing cancels
 * out of inter-device comparisons.
 *
 * The room's microphone ({@link PrivatePulse.micSource}, also the default source) is the bus
 * monitor itself, recorded in mono: the server mixes every device's channel into it, as one
 * microphone hears every speaker in a room. Not a `module-remap-source` on the monitor: its
 * latency reports are clamped at 0 and name the end of each 10 ms block the bus renders, so
 * its capture times are late by 0–10 ms and fitting them left the clock 50–100 ppm out
 * (measured: arrivals 4 s apart off by 0.1–0.35 ms); the monitor's reports carry the bus's
 * own latency and fit to ~5 ppm (0.01–0.02 ms over 4 s).
 */
export interface PrivatePulse {
  dir: string;
  /** Environment for a client process that should play into device `k`. */
  env(k?: number): Record<string, string>;
  devices: number;
  /** The source that hears every device (record it in mono to mix them): the room's microphone. */
  micSource: string;
  /**
   * Hands every chunk the bus monitor's one reader receives, with its arrival time and its
   * byte offset in the reader's stream, to `fn` until the returned function is called (what
   * {@link recordBus} records from).
   */
  listen(fn: (chunk: Uint8Array, atMs: number, offset: number) => void): () => void;
  stop(): Promise<void>;
}

export async function startPulse(devices: number): Promise<PrivatePulse> {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-pulse-" });
  const channels = Array.from({ length: devices }, (_, k) => `aux${k}`).join(",");
  const lines = [
    "load-module module-native-protocol-unix auth-anonymous=1",
    `load-module module-null-sink sink_name=bus rate=48000 channels=${devices} channel_map=${channels}`,
    ...Array.from(
      { length: devices },
      (_, k) =>
        `load-module module-remap-sink sink_name=dev${k} master=bus master_channel_map=aux${k} channel_map=mono remix=no`,
    ),
    "set-default-sink dev0",
    "set-default-source bus.monitor",
  ];
  await Deno.writeTextFile(`${dir}/my.pa`, lines.join("\n") + "\n");
  await Deno.writeTextFile(
    `${dir}/daemon.conf`,
    "default-sample-rate = 48000\nalternate-sample-rate = 48000\nflat-volumes = no\n",
  );
  const base = {
    XDG_RUNTIME_DIR: dir,
    PULSE_RUNTIME_PATH: `${dir}/pulse`,
    PULSE_SERVER: `unix:${dir}/pulse/native`,
    PULSE_CONFIG: `${dir}/daemon.conf`,
    HOME: dir,
  };
  const out = await new Deno.Command("pulseaudio", {
    args: [
      "-D",
      "-n",
      "-F",
      `${dir}/my.pa`,
      "--exit-idle-time=-1",
      "--use-pid-file=yes",
      "--disallow-exit",
      "--log-target=stderr",
    ],
    env: base,
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new Error(`Cannot start PulseAudio (is the pulseaudio package installed?): ${e.message}`);
  });
  if (!out.success) {
    throw new Error(
      `PulseAudio failed to start: ${new TextDecoder().decode(out.stderr).slice(-800)}`,
    );
  }
  // Wait until the socket answers.
  for (let i = 0;; i++) {
    const probe = await new Deno.Command("pactl", {
      args: ["info"],
      env: base,
      stdout: "null",
      stderr: "null",
    })
      .output();
    if (probe.success) break;
    if (i > 100) throw new Error("PulseAudio started but its socket never answered");
    await new Promise((r) => setTimeout(r, 50));
  }
  // The bus monitor has one reader from start to stop, and recordings copy from it. A null sink
  // with nobody reading its monitor renders far ahead (its latency read ~460 ms with one stream
  // playing); the first reader asks for 10 ms and every stream's latency drops at once, so a
  // test that started its own reader just before Play re-timed every player as it began. A
  // second, idle reader kept for the server's lifetime fixed that but put a native host and
  // peer 0.1-0.9 ms apart (median of six runs 0.38 ms, 0.09 ms with one reader), so there is
  // exactly one.
  const reader = new Deno.Command("parec", {
    args: [...monitorArgs(devices), "--latency-msec=10"],
    env: { ...base, PULSE_SINK: "dev0" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const listeners = new Set<(chunk: Uint8Array, atMs: number, offset: number) => void>();
  const reading = (async () => {
    let offset = 0;
    for await (const c of reader.stdout) {
      const atMs = performance.timeOrigin + performance.now();
      for (const fn of listeners) fn(c, atMs, offset);
      offset += c.byteLength;
    }
  })();
  return {
    dir,
    devices,
    micSource: "bus.monitor",
    env: (k = 0) => ({ ...base, PULSE_SINK: `dev${k}` }),
    listen(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    async stop() {
      listeners.clear();
      try {
        reader.kill("SIGTERM");
      } catch { /* gone with the server */ }
      await reader.status;
      await reading.catch(() => {});
      try {
        const pid = Number((await Deno.readTextFile(`${dir}/pulse/pid`)).trim());
        if (pid > 0) Deno.kill(pid, "SIGTERM");
        for (let i = 0; i < 50; i++) {
          try {
            Deno.kill(pid, "SIGCONT"); // still alive?
          } catch {
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      } catch { /* already gone */ }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Runs `pactl` against the test's sound server and returns what it printed; throws with its
 * words if it fails.
 */
export async function pactl(pulse: PrivatePulse, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("pactl", {
    args,
    env: pulse.env(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`pactl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A recording of the bus: one channel per device, and when each sample was captured. */
export interface BusRecording {
  channels: Float32Array[];
  rateHz: number;
  /**
   * Real time (ms, `performance.timeOrigin + performance.now()`) at which sample `i` reached
   * the monitor, from a lower-envelope fit of chunk arrival times: accurate to about one chunk
   * (reported as `chunkMs`), plenty for "pressed play → sound" but not for sync figures,
   * which come from comparing channels of the one recording.
   */
  realMsOf(i: number): number;
  /** Sample index captured at real time `ms` (inverse of realMsOf). */
  sampleAt(ms: number): number;
  chunkMs: number;
}

/** parec's arguments for the bus monitor as float32, one channel per device, 48 kHz. */
function monitorArgs(devices: number): string[] {
  const channels = Array.from({ length: devices }, (_, k) => `aux${k}`).join(",");
  return [
    "-d",
    "bus.monitor",
    "--rate=48000",
    "--format=float32le",
    `--channels=${devices}`,
    `--channel-map=${channels}`,
    "--no-remix",
    "--raw",
  ];
}

/**
 * Records the bus monitor as float32 with one channel per device, until `stop()`.
 * Start it before the players so their first sound is captured.
 */
export function recordBus(pulse: PrivatePulse): { stop(): Promise<BusRecording> } {
  const rateHz = 48000;
  const frameBytes = 4 * pulse.devices;
  const chunks: Uint8Array[] = [];
  const arrivals: { endFrame: number; atMs: number }[] = [];
  let bytes = 0;
  // The reader's chunks need not end on a frame: skip to the first whole frame.
  let skip = -1;
  const unlisten = pulse.listen((c, atMs, offset) => {
    if (skip < 0) skip = (frameBytes - offset % frameBytes) % frameBytes;
    if (skip >= c.byteLength) {
      skip -= c.byteLength;
      return;
    }
    const kept = skip > 0 ? c.slice(skip) : c;
    skip = 0;
    chunks.push(kept);
    bytes += kept.byteLength;
    arrivals.push({ endFrame: bytes / frameBytes, atMs });
  });
  let result: Promise<BusRecording> | null = null;
  return {
    stop(): Promise<BusRecording> {
      unlisten();
      return result ??= Promise.resolve(assemble());
    },
  };

  function assemble(): BusRecording {
    const frames = Math.floor(bytes / frameBytes);
    const all = new Uint8Array(frames * frameBytes);
    let off = 0;
    for (const c of chunks) {
      const n = Math.min(c.byteLength, all.length - off);
      all.set(c.subarray(0, n), off);
      off += n;
      if (off >= all.length) break;
    }
    chunks.length = 0;
    const f = new Float32Array(all.buffer);
    const chans = Array.from({ length: pulse.devices }, (_, k) => {
      const ch = new Float32Array(frames);
      for (let i = 0; i < frames; i++) ch[i] = f[i * pulse.devices + k];
      return ch;
    });
    const fit = arrivalFit(arrivals, rateHz);
    return {
      channels: chans,
      rateHz,
      realMsOf: (i) => fit.a + fit.b * i,
      sampleAt: (ms) => (ms - fit.a) / fit.b,
      chunkMs: fit.chunkMs,
    };
  }
}

/**
 * Fits arrival time ≈ a + b·frame through the earliest arrivals (per 2 s bin), so scheduling
 * delays of the reader only ever push points up, never the fit.
 */
export function arrivalFit(
  arrivals: { endFrame: number; atMs: number }[],
  rateHz: number,
): { a: number; b: number; chunkMs: number } {
  const msPerFrame = 1000 / rateHz;
  const bins = new Map<number, { endFrame: number; atMs: number }>();
  for (const p of arrivals) {
    const key = Math.floor(p.endFrame / (2 * rateHz));
    const d = p.atMs - p.endFrame * msPerFrame;
    const cur = bins.get(key);
    if (!cur || d < cur.atMs - cur.endFrame * msPerFrame) bins.set(key, p);
  }
  const pts = [...bins.values()];
  const steps = arrivals.slice(1).map((p, i) => (p.endFrame - arrivals[i].endFrame) * msPerFrame);
  const chunkMs = steps.length ? steps.sort((x, y) => x - y)[Math.floor(steps.length / 2)] : 0;
  if (pts.length < 3) {
    const p = pts[0] ?? { endFrame: 0, atMs: 0 };
    return { a: p.atMs - p.endFrame * msPerFrame, b: msPerFrame, chunkMs };
  }
  const mx = pts.reduce((s, p) => s + p.endFrame, 0) / pts.length;
  const my = pts.reduce((s, p) => s + p.atMs, 0) / pts.length;
  let sxx = 0, sxy = 0;
  for (const p of pts) {
    sxx += (p.endFrame - mx) ** 2;
    sxy += (p.endFrame - mx) * (p.atMs - my);
  }
  const b = sxy / sxx;
  // Shift down so every bin minimum lies on or above the line.
  let a = my - b * mx;
  a += Math.min(...pts.map((p) => p.atMs - (a + b * p.endFrame)));
  return { a, b, chunkMs };
}
