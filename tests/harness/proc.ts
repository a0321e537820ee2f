/**
 * A running `phaselock` process in headless mode: commands go to its stdin, its JSON events
 * are collected from stdout, and tests wait for events with a bounded timeout.
 */
export interface Event {
  type: string;
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

  constructor(args: string[], opts: { env?: Record<string, string>; prefix?: string[] } = {}) {
    const cmd = [...(opts.prefix ?? []), Deno.execPath(), "run", "-A", `${ROOT}main.ts`, ...args];
    this.child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      cwd: ROOT,
      env: opts.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#pump(this.child.stdout, (line) => {
      try {
        this.events.push(JSON.parse(line));
      } catch {
        this.events.push({ type: "unparsed", line });
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.#pump(this.child.stderr, (line) => this.stderr += line + "\n");
    this.exited = this.child.status;
  }

  async #pump(s: ReadableStream<Uint8Array>, onLine: (l: string) => void) {
    let buf = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
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
