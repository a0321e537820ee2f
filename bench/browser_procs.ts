/**
 * A browser's processes as the kernel sees them (Linux /proc), for the benchmark's memory
 * figures: which process holds a tab, and what its memory is made of. Browsers spread a page
 * over several processes; a page's own memory (its JavaScript, its decoded audio, its worker)
 * lives in one renderer (Chromium) or web-content process (Firefox), found here by its command
 * line and by which of them grew when the page loaded its track.
 */
import { descendants } from "../tests/harness/proc.ts";

export interface ProcMemory {
  pid: number;
  /** `chromium renderer`, `firefox Isolated Web Co`, … (command line, or thread name). */
  kind: string;
  /** Resident set (VmRSS): every page in RAM, shared libraries included. */
  rssMb: number;
  /** The most it was resident (VmHWM). */
  peakRssMb: number;
  /** Proportional set (Pss): shared pages divided among the processes that map them. */
  pssMb: number;
  /** Anonymous pages (heap, JS, ArrayBuffers, WASM memory): what the page itself costs. */
  anonMb: number;
  /** File-backed resident pages (the browser's own code and data files). */
  fileMb: number;
  /** Shared-memory resident pages (buffers shared with other browser processes). */
  shmemMb: number;
  cpuSec: number;
}

const MB = 1024;

function readKb(text: string, key: string): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? NaN);
}

function kindOf(argv: string[], comm: string): string | null {
  // Chromium's and Firefox's children rewrite their command line into one string.
  const cmd = argv.length === 1 ? argv[0].split(" ") : argv;
  const exe = cmd[0] ?? "";
  if (/chromium/.test(exe)) {
    const type = cmd.find((a) => a.startsWith("--type="))?.slice(7);
    if (!type) return "chromium browser";
    const sub = cmd.find((a) => a.startsWith("--utility-sub-type="))?.slice(19);
    return `chromium ${type}${sub ? ` ${sub.split(".").at(-1)}` : ""}`;
  }
  // Firefox's children say what they are in their thread name: "Web Content", "Isolated Web
  // Co" (a site's own process), "RDD Process", "Socket Process"…
  if (/firefox/.test(exe)) {
    return cmd.includes("-contentproc") ? `firefox ${comm}` : "firefox main";
  }
  return null;
}

/** One process's memory from /proc/PID/{status,smaps_rollup,stat}; null once it has ended. */
export function procMemory(pid: number): ProcMemory | null {
  try {
    const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean);
    const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
    const kind = kindOf(cmd, comm);
    if (!kind) return null;
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      pid,
      kind,
      rssMb: readKb(status, "VmRSS") / MB,
      peakRssMb: readKb(status, "VmHWM") / MB,
      pssMb: readKb(rollup, "Pss") / MB,
      anonMb: readKb(status, "RssAnon") / MB,
      fileMb: readKb(status, "RssFile") / MB,
      shmemMb: readKb(status, "RssShmem") / MB,
      cpuSec: (Number(f[11]) + Number(f[12])) / 100,
    };
  } catch {
    return null;
  }
}

/** Every Chromium and Firefox process this program started (they are all below it). */
export function browserProcesses(engine: "chromium" | "firefox"): ProcMemory[] {
  return descendants(Deno.pid)
    .map(procMemory)
    .filter((p): p is ProcMemory => p !== null && p.kind.startsWith(engine));
}

/** The processes that can hold a page: Chromium's renderers, Firefox's web-content processes. */
export function pageProcesses(engine: "chromium" | "firefox"): ProcMemory[] {
  const kinds = engine === "chromium"
    ? ["chromium renderer"]
    : ["firefox Web Content", "firefox Isolated Web Co"];
  return browserProcesses(engine).filter((p) => kinds.includes(p.kind));
}

/**
 * The tab's process: of the page processes, the one whose resident memory grew most since
 * `before` (a page that decoded a 10-minute track grows by ~100 MB; the spare and privileged
 * processes beside it do not move).
 */
export function tabProcess(
  engine: "chromium" | "firefox",
  before: ProcMemory[],
): { tab: ProcMemory; grewMb: number; others: ProcMemory[] } | null {
  const now = pageProcesses(engine);
  if (!now.length) return null;
  const was = (pid: number) => before.find((b) => b.pid === pid)?.rssMb ?? 0;
  const sorted = [...now].sort((a, b) => (b.rssMb - was(b.pid)) - (a.rssMb - was(a.pid)));
  return {
    tab: sorted[0],
    grewMb: sorted[0].rssMb - was(sorted[0].pid),
    others: sorted.slice(1),
  };
}
