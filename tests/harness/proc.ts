/**
 * A running `phaselock` process in headless mode: commands go to its stdin, its JSON events
 * are collected from stdout, and tests wait for events with a bounded timeout.
 */
export interface Event {
  type: string;
  /** When the harness read this event (real ms: performance.timeOrigin + performance.now()). */
  rxMs?: number;
  [k: string]: unknown;
}

const ROOT = new URL("../../", import.meta.url).pathname;

export class AppProcess {
  readonly events: Event[] = [];
  readonly child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiters: (() => void)[] = [];
  stderr = "";
  readonly exited: Promise<Deno.CommandStatus>;
  /** Real ms at which the process was spawned. */
  readonly spawnedMs = performance.timeOrigin + performance.now();

  /**
   * Runs `main.ts` (or another `script`) with `args`, optionally behind a `prefix` command,
   * from the repository (or `cwd`, whose deno.json then applies).
   */
  constructor(
    args: string[],
    opts: { env?: Record<string, string>; prefix?: string[]; script?: string; cwd?: string } = {},
  ) {
    const script = opts.script ?? `${ROOT}main.ts`;
    const cmd = [...(opts.prefix ?? []), Deno.execPath(), "run", "-A", script, ...args];
    this.child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      cwd: opts.cwd ?? ROOT,
      env: opts.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#pump(this.child.stdout, (line) => {
      const rxMs = performance.timeOrigin + performance.now();
      try {
        this.events.push({ ...JSON.parse(line), rxMs });
      } catch {
        this.events.push({ type: "unparsed", line, rxMs });
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.#pump(this.child.stderr, (line) => this.stderr += line + "\n");
    this.exited = this.child.status;
  }

  async #pump(s: ReadableStream<Uint8Array>, onLine: (l: string) => void) {
    await forEachLine(s, onLine);
    for (const w of this.#waiters.splice(0)) w();
  }

  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n")).catch(() => {});
  }

  /** Waits for the first event (from index `from`) matching `pred`, or throws after timeout. */
  async waitFor(pred: (e: Event) => boolean, timeoutMs = 15000, what = "event"): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out waiting for ${what}. Events: ${
            JSON.stringify(this.events.slice(-8))
          }\nstderr: ${this.stderr.slice(-1500)}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  count(pred: (e: Event) => boolean): number {
    return this.events.filter(pred).length;
  }

  /** Sends quit and waits; kills after 5 s. */
  async quit(): Promise<Deno.CommandStatus> {
    await this.send("quit");
    await this.#writer.close().catch(() => {});
    const t = setTimeout(() => this.kill("SIGKILL"), 5000);
    const s = await this.exited;
    clearTimeout(t);
    return s;
  }

  kill(sig: Deno.Signal = "SIGKILL") {
    try {
      this.child.kill(sig);
    } catch { /* already exited */ }
  }
}

/** CPU time and memory of a running process, from /proc (Linux). */
export async function procUsage(
  pid: number,
): Promise<{ cpuSec: number; rssMb: number; peakRssMb: number } | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    return { cpuSec: ticks / 100, rssMb: kb("VmRSS") / 1024, peakRssMb: kb("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/**
 * Pids of every live descendant of `pid` (for the app: WebKit's web and network processes),
 * from /proc/PID/task/TID/children.
 */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${p}/task`)].map((e) => e.name);
    } catch {
      return;
    }
    for (const t of tasks) {
      let kids = "";
      try {
        kids = Deno.readTextFileSync(`/proc/${p}/task/${t}/children`);
      } catch { /* thread gone */ }
      for (const k of kids.trim().split(/\s+/).filter(Boolean).map(Number)) {
        if (!out.includes(k)) {
          out.push(k);
          walk(k);
        }
      }
    }
  };
  walk(pid);
  return out;
}

/** Whether `pid` exists and is not a zombie, from /proc. */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Resolves with the exit status, or null if the process is still running after `ms`. */
export async function exitWithin(p: AppProcess, ms: number): Promise<Deno.CommandStatus | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((r) => timer = setTimeout(() => r(null), ms));
  try {
    return await Promise.race([p.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls `onLine` with every complete line of a process's output stream, until it ends. */
export async function forEachLine(
  s: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buf = "";
  for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
}
