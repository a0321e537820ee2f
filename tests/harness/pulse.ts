/**
 * A private PulseAudio daemon for tests and benchmarks: one null sink `bus` with one channel
 * per simulated device, and a remap sink `devK` per device feeding channel auxK. Recording the
 * bus monitor gives every device's output in one stream, so the recorder's own timing cancels
 * out of inter-device comparisons.
 */
export interface PrivatePulse {
  dir: string;
  /** Environment for a client process that should play into device `k`. */
  env(k?: number): Record<string, string>;
  devices: number;
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
  return {
    dir,
    devices,
    env: (k = 0) => ({ ...base, PULSE_SINK: `dev${k}` }),
    async stop() {
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
 * Records the bus monitor as float32 with one channel per device, until `stop()`.
 * Start it before the players so their first sound is captured.
 */
export function recordBus(pulse: PrivatePulse, path: string) {
  const channels = Array.from({ length: pulse.devices }, (_, k) => `aux${k}`).join(",");
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `exec parec -d bus.monitor --rate=48000 --format=float32le --channels=${pulse.devices} --channel-map=${channels} --no-remix --raw --latency-msec=20 > '${path}'`,
    ],
    env: pulse.env(0),
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return {
    async stop(): Promise<Float32Array[]> {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
      const bytes = await Deno.readFile(path);
      const all = new Float32Array(
        bytes.buffer,
        0,
        Math.floor(bytes.byteLength / 4 / pulse.devices) * pulse.devices,
      );
      const n = all.length / pulse.devices;
      return Array.from({ length: pulse.devices }, (_, k) => {
        const ch = new Float32Array(n);
        for (let i = 0; i < n; i++) ch[i] = all[i * pulse.devices + k];
        return ch;
      });
    },
  };
}
