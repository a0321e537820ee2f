/**
 * Footprint benchmark (`deno task bench:footprint [--seconds 600] [--measure 20]`): what a
 * native host and a native peer cost while they play a long track — CPU per thread over a
 * steady stretch of playing (not the start-up, decoding and clock locking that the sync
 * benchmark's lifetime averages include), RSS over that stretch (the median and the largest of
 * a reading a second) and at its peak. Both play into a private PulseAudio on loopback. Prints a JSON line and a one-line summary beside the goals
 * (≤ 120 MB RSS with a 10-minute track, ≤ 3 % of one core while playing).
 */
import { hostProcess, peerProcess } from "../tests/harness/jam.ts";
import { type AppProcess, procUsage } from "../tests/harness/proc.ts";
import { startPulse } from "../tests/harness/pulse.ts";
import { noiseTrack } from "./sync_rig.ts";

const GOALS = { rssMb: 120, cpuPercent: 3 };
const TICKS_PER_SEC = 100;

/** CPU ticks of each thread of `pid`, by "name:tid". */
function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
      const name = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/comm`).trim();
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(`${name}:${t.name}`, Number(f[11]) + Number(f[12]));
    } catch { /* the thread ended */ }
  }
  return out;
}

interface Footprint {
  name: string;
  cpuPercent: number;
  /** Threads that used CPU in the stretch, by name, % of one core. */
  threads: Record<string, number>;
  /** Median of the readings over the stretch, and the largest of them. */
  rssMb: number;
  rssMaxMb: number;
  /** The largest ever (VmHWM), decoding included. */
  peakRssMb: number;
}

async function measure(procs: { name: string; p: AppProcess }[], seconds: number) {
  const before = procs.map((x) => threadTicks(x.p.child.pid));
  // RSS moves by ±10 MB within seconds while playing (the runtime's garbage comes and goes),
  // so one reading says little: it is read every second and the median and largest kept.
  const rss: number[][] = procs.map(() => []);
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    for (const [i, x] of procs.entries()) {
      const u = await procUsage(x.p.child.pid);
      if (u) rss[i].push(u.rssMb);
    }
  }
  const out: Footprint[] = [];
  for (const [i, x] of procs.entries()) {
    const after = threadTicks(x.p.child.pid);
    const threads: Record<string, number> = {};
    let total = 0;
    for (const [k, v] of after) {
      const used = v - (before[i].get(k) ?? 0);
      total += used;
      const name = k.split(":")[0];
      if (used > 0) threads[name] = (threads[name] ?? 0) + (100 * used) / TICKS_PER_SEC / seconds;
    }
    const u = await procUsage(x.p.child.pid);
    out.push({
      name: x.name,
      cpuPercent: (100 * total) / TICKS_PER_SEC / seconds,
      threads: Object.fromEntries(Object.entries(threads).map(([k, v]) => [k, round(v)])),
      rssMb: round(median(rss[i])),
      rssMaxMb: round(Math.max(...rss[i])),
      peakRssMb: round(u?.peakRssMb ?? NaN),
    });
  }
  return out;
}

function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function round(x: number) {
  return Math.round(x * 100) / 100;
}

if (import.meta.main) {
  const arg = (name: string, dflt: number) => {
    const i = Deno.args.indexOf(`--${name}`);
    const v = i < 0 ? dflt : Number(Deno.args[i + 1]);
    if (!(v > 0)) throw new Error(`--${name} needs a positive number`);
    return v;
  };
  const trackSec = arg("seconds", 600), measureSec = arg("measure", 20);
  const track = await noiseTrack(new URL("./.cache", import.meta.url).pathname, "ten", trackSec);
  const pulse = await startPulse(2);
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-footprint-" });
  const procs: { name: string; p: AppProcess }[] = [];
  try {
    const { p: host, port } = hostProcess(["--config-dir", `${tmp}/host-cfg`], {
      env: pulse.env(0),
      audio: "pulse",
    });
    procs.push({ name: "host", p: host });
    await host.waitFor((e) => e.type === "session", 30000, "the host's session");
    const peer = peerProcess(`127.0.0.1:${port}`, "Sam", `${tmp}/peer`, {
      env: pulse.env(1),
      audio: "pulse",
      extra: ["--config-dir", `${tmp}/peer-cfg`],
    });
    procs.push({ name: "peer", p: peer });
    await host.send(`add ${track}`);
    await host.waitFor((e) => e.type === "track-ready-all", 120000, "the track ready everywhere");
    await host.send("play");
    await peer.waitFor((e) => e.type === "started", 15000, "the peer's start");
    // Past the start: clocks locked, the next-track work done, drift control settled.
    await new Promise((r) => setTimeout(r, 5000));
    const figures = await measure(procs, measureSec);
    console.log(JSON.stringify({ trackSec, measureSec, goals: GOALS, figures }));
    console.log(
      `footprint, ${trackSec / 60}-minute track, ${measureSec} s of playing: ` +
        figures.map((f) =>
          `${f.name} CPU ${f.cpuPercent.toFixed(1)} % (goal ≤ ${GOALS.cpuPercent}; ${
            Object.entries(f.threads).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")
          }), RSS ${f.rssMb.toFixed(0)} MB median (${f.rssMaxMb.toFixed(0)} max), peak ${
            f.peakRssMb.toFixed(0)
          } MB (goal ≤ ${GOALS.rssMb})`
        ).join("; "),
    );
  } finally {
    for (const { p } of procs) {
      p.kill("SIGTERM");
      await p.exited;
    }
    await pulse.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
