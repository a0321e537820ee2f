/**
 * A rig for swarm mode (`phaselock serve --headless`), for the swarm tests and the benchmark:
 *
 * - the server in a network namespace of its own, reached over a veth pair, so the kernel's
 *   byte counters of its one interface say exactly what went through the server (members talk
 *   to each other in the root namespace, never over that link);
 * - swarm pages on Chromium (Playwright) or Firefox ESR (puppeteer), each browser playing into
 *   its own sink of a private PulseAudio (tests/harness/pulse.ts), joined by a real click;
 * - native members without sound (`swarm/bot.ts`), many in one process, whose status lines are
 *   kept (the latest per member);
 * - `stop()` ends everything it started, in reverse order, and deletes the namespace.
 *
 * Every wait has a timeout; a missing system part (root and iproute2, a browser, PulseAudio)
 * fails with a sentence, never a skip.
 */
import type { Page as PlaywrightPage } from "playwright-core";
import type { Page as PuppeteerPage } from "puppeteer-core";
import type { SwarmView } from "../../swarm/view.ts";
import type { FileInfo } from "../../swarm/exchange.ts";
import type { ExchangeStats } from "../../swarm/exchange.ts";
import type { Transport } from "../../swarm/protocol.ts";
import type { SwarmMetrics } from "../../swarm/server.ts";
import { launchChromium } from "./browser.ts";
import { launchFirefox } from "./firefox.ts";
import { adaptPlaywright, adaptPuppeteer, type Engine, type TestPage } from "./pages.ts";
import { AppProcess, descendants, forEachLine } from "./proc.ts";
import { type PrivatePulse, startPulse } from "./pulse.ts";
import { makeTestCert, type TestCert } from "./tls.ts";
import { lagSeries, percentile } from "./xcorr.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Real time (ms), the clock the bus recording's `sampleAt` takes. */
export const realNowMs = (): number => performance.timeOrigin + performance.now();

/**
 * Chromium hides local addresses behind mDNS names (`….local`) unless told not to, and nothing
 * resolves them here: without this switch its pages offer no usable candidate.
 */
export const CHROMIUM_WEBRTC_ARGS = ["--disable-features=WebRtcHideLocalIpsWithMdns"];
/**
 * Firefox hides its host candidates behind mDNS names too (`<uuid>.local`, for a page that has
 * not asked for the microphone). It still links with members that offer real addresses (it
 * checks theirs, and they learn its address from those checks), but two such Firefox pages
 * could not reach each other here; with this preference it offers its real addresses.
 */
export const FIREFOX_WEBRTC_PREFS: Record<string, unknown> = {
  "media.peerconnection.ice.obfuscate_host_addresses": false,
};

async function run(args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(args[0], { args: args.slice(1), stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    throw new Error(`Cannot run ${args[0]} (is iproute2 installed?): ${(e as Error).message}`);
  }
  if (!out.success) {
    throw new Error(`"${args.join(" ")}" failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A network namespace joined to the root one by a veth pair (a /30 of 10.231.X.0). */
export interface NetNs {
  name: string;
  /** The namespace side's interface and address (where the server listens). */
  iface: string;
  ip: string;
  /** The root side's address. */
  rootIp: string;
  /** Prefix that runs a command inside the namespace. */
  exec: string[];
  /** Bytes through the namespace's interface so far (the kernel's counters). */
  counters(): Promise<{ rxBytes: number; txBytes: number; rxPackets: number; txPackets: number }>;
  destroy(): Promise<void>;
}

/** Makes a namespace with one veth link to the root namespace. Needs root. */
export async function createNetNs(): Promise<NetNs> {
  const tag = Math.random().toString(36).slice(2, 7);
  const name = `plsw${tag}`;
  const rootIf = `vsw${tag}r`, nsIf = `vsw${tag}n`;
  // A /30 in 10.231.0.0/16 on no interface yet (other rigs may run beside this one).
  const used = await run(["ip", "-4", "-br", "addr"]).catch(() => "");
  let prefix = "";
  let low = 0;
  for (let i = 0; i < 50; i++) {
    prefix = `10.231.${Math.floor(Math.random() * 256)}.`;
    low = Math.floor(Math.random() * 64) * 4;
    if (!used.includes(`${prefix}${low + 1}/`) && !used.includes(`${prefix}${low + 2}/`)) break;
  }
  const rootIp = `${prefix}${low + 1}`, ip = `${prefix}${low + 2}`;
  const destroy = async () => {
    await run(["ip", "netns", "del", name]).catch(() => {});
    // Deleting the namespace deletes its end of the pair, and with it ours; make sure.
    await run(["ip", "link", "del", rootIf]).catch(() => {});
  };
  try {
    await run(["ip", "netns", "add", name]);
    await run(["ip", "link", "add", rootIf, "type", "veth", "peer", "name", nsIf]);
    await run(["ip", "link", "set", nsIf, "netns", name]);
    // No IPv6 link-local address on our side: it would appear a second or two after the link
    // comes up (after duplicate address detection), and Chromium aborts every request in flight
    // on an address change (ERR_NETWORK_CHANGED), as a page was loading its script in one run.
    await run(["ip", "link", "set", rootIf, "addrgenmode", "none"]);
    await run(["ip", "addr", "add", `${rootIp}/30`, "dev", rootIf]);
    await run(["ip", "link", "set", rootIf, "up"]);
    await run(["ip", "-n", name, "addr", "add", `${ip}/30`, "dev", nsIf]);
    await run(["ip", "-n", name, "link", "set", nsIf, "up"]);
    await run(["ip", "-n", name, "link", "set", "lo", "up"]);
  } catch (e) {
    await destroy();
    throw new Error(
      `Cannot create a network namespace for the swarm server (needs root and iproute2): ${
        (e as Error).message
      }`,
    );
  }
  return {
    name,
    iface: nsIf,
    ip,
    rootIp,
    exec: ["ip", "netns", "exec", name],
    async counters() {
      const [link] = JSON.parse(await run(["ip", "-n", name, "-s", "-j", "link", "show", nsIf]));
      const s = link.stats64 ?? link.stats;
      return {
        rxBytes: s.rx.bytes,
        txBytes: s.tx.bytes,
        rxPackets: s.rx.packets,
        txPackets: s.tx.packets,
      };
    },
    destroy,
  };
}

export interface NsSwarmServer {
  ns: NetNs;
  port: number;
  /** `http(s)://<namespace address>:PORT` (no trailing slash). */
  base: string;
  tls: boolean;
  /** The test certificate (valid for the namespace's address) when serving HTTPS. */
  cert?: TestCert;
  /** The server process (a new one after {@link NsSwarmServer.restart}). */
  readonly proc: AppProcess;
  /**
   * Quits the server and starts a new one on the same port (every member's connection drops;
   * the pages reconnect on their own). Resolves once it serves; the outage's start and end.
   */
  restart(): Promise<{ downMs: number; upMs: number }>;
  /** `/metrics`, as text and parsed. */
  metrics(): Promise<{ text: string; json: SwarmMetrics }>;
  /** Environment for a Deno process (a bot) that should trust the server's certificate. */
  clientEnv(): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Runs `phaselock serve --headless` inside a fresh namespace (`--tls`: with a test
 * certificate made for the namespace's address) and waits until it serves.
 */
export async function startNsServer(opts: { tls?: boolean; logDir?: string } = {}): Promise<
  NsSwarmServer
> {
  const ns = await createNetNs();
  let cert: TestCert | undefined;
  let proc: AppProcess | undefined;
  const logDir = opts.logDir ?? await Deno.makeTempDir({ prefix: "phaselock-swarm-server-" });
  const stop = async () => {
    if (proc) {
      await proc.quit().catch(() => {});
      proc = undefined;
    }
    await ns.destroy();
    await cert?.remove().catch(() => {});
    if (!opts.logDir) await Deno.remove(logDir, { recursive: true }).catch(() => {});
  };
  try {
    if (opts.tls) cert = await makeTestCert({ extraIp: ns.ip });
    const launch = async (port: number) => {
      const args = ["serve", "--headless", "--port", String(port), "--bind", "0.0.0.0"];
      args.push("--log-file", `${logDir}/server.log`, "--config-dir", `${logDir}/config`);
      if (cert) args.push("--tls-cert", cert.certFile, "--tls-key", cert.keyFile);
      proc = new AppProcess(args, { prefix: ns.exec });
      const serving = await proc.waitFor(
        (e) => e.type === "serving" || e.type === "error",
        90_000,
        "the swarm server to serve",
      );
      if (serving.type !== "serving") {
        throw new Error(`The server failed: ${JSON.stringify(serving)}`);
      }
      return serving.port as number;
    };
    const port = await launch(0);
    const base = `${cert ? "https" : "http"}://${ns.ip}:${port}`;
    const client = cert ? Deno.createHttpClient({ caCerts: [cert.ca] }) : undefined;
    const server: NsSwarmServer = {
      ns,
      port,
      base,
      tls: !!cert,
      ...(cert ? { cert } : {}),
      get proc() {
        return proc!;
      },
      async restart() {
        const downMs = realNowMs();
        const old = proc!;
        proc = undefined;
        const quit = await old.quit();
        if (quit.code !== 0) throw new Error(`the server quit with ${quit.code}: ${old.stderr}`);
        await launch(port);
        return { downMs, upMs: realNowMs() };
      },
      async metrics() {
        const res = await fetch(`${base}/metrics`, {
          ...(client ? { client } : {}),
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`/metrics answered ${res.status}: ${text.slice(0, 200)}`);
        return { text, json: JSON.parse(text) };
      },
      clientEnv: (): Record<string, string> => (cert ? { DENO_CERT: cert.caFile } : {}),
      async stop() {
        client?.close();
        await stop();
      },
    };
    return server;
  } catch (e) {
    const err = proc?.stderr.slice(-1500) ?? "";
    await stop();
    throw new Error(`${(e as Error).message}${err ? `\nserver stderr: ${err}` : ""}`);
  }
}

// ---------------------------------------------------------------- pages

/** Twice a second, what placed a page's sound (ui/engine/web_output.ts `trace`). */
export interface OutputTrace {
  atMs: number;
  hostMinusPageMs: number | null;
  source: string;
  apartMs: number | null;
  errorMs: number;
  resyncs: number;
  steps: number;
}

/** What `phaselock.debug()` answers in a page (swarm/member.ts). */
export interface MemberDebug {
  phase: string;
  me: number | null;
  director: number | null;
  term: number;
  transport: Transport;
  clock: { locked: boolean; rttMs: number; errorMs: number } | null;
  output: {
    playing: { trackId: string; frame: number } | null;
    state: string;
    errorMs: number;
    resyncs: number;
    source: string;
    trace: OutputTrace[];
  } | null;
  files: FileInfo[];
  stats: ExchangeStats;
  links: { id: number; open: boolean }[];
  marks: { joinMs?: number; welcomeMs?: number; lockedMs?: number };
}

export interface SwarmPage {
  engine: Engine;
  /** The sink it plays into (channel of the bus recording). */
  sink: number;
  page: TestPage;
  /** The name it joined with. */
  name: string;
  /** Fills the key and the name and clicks Join (a trusted click: it unlocks audio). */
  join(key: string, name: string): Promise<void>;
  /** Puts a file in the "Share a file" input (a DataTransfer and a `change` event). */
  share(fileName: string, bytes: Uint8Array): Promise<void>;
  view(): Promise<SwarmView>;
  debug(): Promise<MemberDebug>;
  /** The engine's last log lines in the page (`ms line`), oldest first. */
  log(): Promise<string[]>;
  /** Whether the page still runs scripts (answers within `timeoutMs`). */
  answers(timeoutMs?: number): Promise<boolean>;
  /** Polls `expr` over the view `v` (and `d`, the debug data) until truthy; throws after. */
  waitFor(expr: string, timeoutMs: number, what?: string): Promise<void>;
  consoleErrors(): string[];
  /**
   * Holds the page's main thread for `ms`, as a phone that stops a tab in the background (or a
   * long pause) does: its timers, sockets and audio scheduling wait; the sound already handed
   * to the audio thread plays on, then silence. (Headless Chromium never freezes a page of
   * its own: its pages stay visible, and a visible page is not frozen even over CDP.)
   */
  stall(ms: number): Promise<void>;
  close(): Promise<void>;
}

export interface SwarmPageOptions {
  pulse: PrivatePulse;
  sink: number;
  /** The server's base (`http(s)://host:port`); the page opens `${base}/`. */
  base: string;
  /** For HTTPS with a certificate the browser does not trust (the test CA). */
  ignoreCertificateErrors?: boolean;
}

/** Opens the swarm page in a fresh browser of `engine` playing into sink `opts.sink`. */
export async function openSwarmPage(engine: Engine, opts: SwarmPageOptions): Promise<SwarmPage> {
  const pulse = { env: opts.pulse.env(opts.sink) };
  const url = `${opts.base}/`;
  let page: TestPage;
  let errors: () => string[];
  let close: () => Promise<void>;
  if (engine === "chromium") {
    const chrome = await launchChromium({
      pulse,
      headless: true,
      args: [
        ...CHROMIUM_WEBRTC_ARGS,
        ...(opts.ignoreCertificateErrors ? ["--ignore-certificate-errors"] : []),
      ],
    });
    close = () => chrome.close();
    try {
      let p: PlaywrightPage;
      try {
        p = await chrome.page(url);
      } catch (e) {
        // Another rig's network namespace coming or going (a veth appears in this one) makes
        // Chromium abort a navigation in flight: once more, in a new context.
        if (!/ERR_NETWORK_CHANGED/.test(String(e))) throw e;
        p = await chrome.page(url);
      }
      page = adaptPlaywright(p);
    } catch (e) {
      await chrome.close();
      throw e;
    }
    errors = () => chrome.consoleErrors();
  } else if (engine === "firefox") {
    if (opts.ignoreCertificateErrors) {
      throw new Error("The swarm rig opens HTTPS pages with a test certificate in Chromium only");
    }
    const firefox = await launchFirefox({ pulse, headless: true, prefs: FIREFOX_WEBRTC_PREFS });
    close = () => firefox.close();
    try {
      const p: PuppeteerPage = await firefox.page(url);
      page = adaptPuppeteer(p);
    } catch (e) {
      await firefox.close();
      throw e;
    }
    errors = () => firefox.consoleErrors();
  } else {
    throw new Error(`The swarm rig drives Chromium and Firefox, not ${engine}`);
  }
  try {
    // 60 s: on a loaded two-core machine a fresh server's first page was seen to take over 30.
    // A network change (an interface of another namespace coming or going) aborts the page's
    // requests in flight, and then the script never comes: load the page again.
    const deadline = Date.now() + 60_000;
    let changes = 0, reloadAgain = false;
    for (;;) {
      try {
        await within(
          page.waitFor(
            "!!(globalThis.phaselock && document.querySelector('input[name=swarm-key]'))",
            5000,
          ),
          15_000,
          "no answer",
        );
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        const seen = errors().filter((x) => x.includes("ERR_NETWORK_CHANGED")).length;
        if (seen > changes || reloadAgain) {
          changes = seen;
          reloadAgain = false;
          // The reload itself may meet the next change: then once more, next time round.
          await within(page.goto(url), 30_000, "no answer to a reload").catch((x) => {
            if (!/ERR_NETWORK_CHANGED/.test(String(x))) throw x;
            reloadAgain = true;
          });
        }
      }
    }
    // The engine's log lines (links, files, notices) kept in the page, for a failure's output.
    await page.evaluate(PAGE_LOG);
  } catch (e) {
    // What the page had got to, for the log: its address, load state, scripts and errors.
    const state = await within(
      page.evaluate<string>(
        "JSON.stringify({ url: location.href, ready: document.readyState, " +
          "scripts: [...document.scripts].map((s) => s.src), engine: !!globalThis.phaselock, " +
          "body: document.body?.innerText.slice(0, 200) })",
      ),
      5000,
      "no answer",
    ).catch((x) => `(no state: ${(x as Error).message})`);
    const errs = errors();
    await close();
    throw new Error(
      `The swarm page did not come up in ${engine}: ${(e as Error).message}; page ${state}; ` +
        `console errors ${JSON.stringify(errs)}`,
    );
  }
  let closed: Promise<void> | undefined;
  const what = (call: string) =>
    `${engine} page "${sp.name}" (sink ${opts.sink}): ${call} unanswered`;
  const sp: SwarmPage = {
    engine,
    sink: opts.sink,
    page,
    name: "",
    async join(key, name) {
      sp.name = name;
      await page.fill("input[name=swarm-key]", key);
      await page.fill("input[name=name]", name);
      await page.click({ text: "Join" });
    },
    async share(fileName, bytes) {
      const b64 = bytesToBase64(bytes);
      const err = await page.evaluate(
        ([name, data]: [string, string]) => {
          const d = globalThis as unknown as {
            document: {
              querySelector(s: string): { files: unknown; dispatchEvent(e: unknown): void } | null;
            };
            DataTransfer: new () => { items: { add(f: unknown): void }; files: unknown };
            File: new (parts: unknown[], name: string, o: { type: string }) => unknown;
            Event: new (t: string, o: { bubbles: boolean }) => unknown;
            atob(s: string): string;
          };
          const input = d.document.querySelector('input[aria-label="Share a file"]');
          if (!input) return "no Share a file input";
          const bin = d.atob(data);
          const arr = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) arr[i] = bin.charCodeAt(i);
          const dt = new d.DataTransfer();
          dt.items.add(new d.File([arr], name, { type: "audio/mpeg" }));
          input.files = dt.files;
          input.dispatchEvent(new d.Event("change", { bubbles: true }));
          return null;
        },
        [fileName, b64] as [string, string],
      );
      if (err) throw new Error(`${engine}: cannot share ${fileName}: ${err}`);
    },
    view: () =>
      within(page.evaluate<SwarmView>("globalThis.phaselock.view.value"), 10_000, what("view")),
    debug: () =>
      within(page.evaluate<MemberDebug>("globalThis.phaselock.debug()"), 10_000, what("debug")),
    log: () => within(page.evaluate<string[]>("globalThis.__swarmLog ?? []"), 10_000, what("log")),
    async stall(ms) {
      await page.evaluate(`(() => {
        const end = performance.now() + ${ms};
        while (performance.now() < end);
      })()`);
    },
    async answers(timeoutMs = 5000) {
      return await within(page.evaluate("1"), timeoutMs, "").then(() => true, () => false);
    },
    async waitFor(expr, timeoutMs, what = expr) {
      try {
        // debug() copies the exchange's state: only when the expression reads it.
        const d = /\bd\b/.test(expr) ? "const d = globalThis.phaselock.debug();" : "";
        // A page that stops answering (Firefox's freeze) must not hold the wait past its time.
        await within(
          page.waitFor(
            `(() => { const v = globalThis.phaselock.view.value; ${d} return !!(${expr}); })()`,
            timeoutMs,
          ),
          timeoutMs + 5000,
          "the page stopped answering",
        );
      } catch (e) {
        const v = await within(
          page.evaluate<SwarmView>("globalThis.phaselock.view.value"),
          5000,
          "",
        ).catch(() => null);
        throw new Error(
          `${engine} page "${sp.name}" (sink ${opts.sink}): ${what} not within ${timeoutMs} ms; ` +
            `status "${v?.status}", phase ${v?.phase}, ${v?.members.length} members ` +
            `(${v?.members.filter((m) => m.linked).length} linked), notices ${
              JSON.stringify(v?.notices.map((n) => n.text))
            }: ${(e as Error).message.slice(0, 300)}`,
        );
      }
    },
    consoleErrors: () => errors(),
    close: () => closed ??= close(),
  };
  return sp;
}

/** Sends the page engine's log lines to a bounded list, `globalThis.__swarmLog`. */
const PAGE_LOG = `(() => {
  const g = globalThis;
  g.__swarmLog = [];
  g.phaselock.o.log = (line) => {
    g.__swarmLog.push(Math.round(performance.now()) + " " + String(line).slice(0, 300));
    if (g.__swarmLog.length > 500) g.__swarmLog.shift();
  };
})()`;

/** `p`, or a rejection with `message` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (after ${ms} ms)`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

// ---------------------------------------------------------------- bots

/** One status line of `swarm/bot.ts`. */
export interface BotStatus {
  type: "status";
  index: number;
  phase: string;
  me: number | null;
  director: number | null;
  term: number;
  transport: Transport;
  locked: boolean;
  files: FileInfo[];
  stats: ExchangeStats;
  /** Open data channels. */
  links: number;
  marks: { joinMs?: number; welcomeMs?: number; lockedMs?: number };
  /** When the harness read it (real ms). */
  rxMs: number;
}

export interface BotOptions {
  base: string;
  key: string;
  count: number;
  name: string;
  share?: string[];
  tamper?: boolean;
  /** Each member uploads at most this many megabytes a second (a phone's uplink). */
  uplinkMBps?: number;
  statusMs?: number;
  env?: Record<string, string>;
}

/**
 * `swarm/bot.ts` running `count` members; keeps each one's latest status line. Its stdin stays
 * open (end of input makes it quit).
 */
export class SwarmBots {
  readonly child: Deno.ChildProcess;
  readonly latest = new Map<number, BotStatus>();
  readonly exited: Promise<Deno.CommandStatus>;
  stderr = "";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #stopped: Promise<void> | undefined;

  constructor(readonly o: BotOptions) {
    const args = ["run", "-A", `${ROOT}swarm/bot.ts`, "--server", o.base, "--key", o.key];
    args.push("--count", String(o.count), "--name", o.name);
    args.push("--status-ms", String(o.statusMs ?? 500));
    for (const f of o.share ?? []) args.push("--share", f);
    if (o.tamper) args.push("--tamper");
    if (o.uplinkMBps) args.push("--uplink-mbps", String(o.uplinkMBps));
    this.child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      env: o.env ?? {},
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.exited = this.child.status;
    void this.#pump(this.child.stdout, (line) => {
      try {
        const s = JSON.parse(line);
        if (s.type === "status") {
          this.latest.set(s.index, { ...s, rxMs: realNowMs() });
        }
      } catch { /* not a status */ }
    });
    void this.#pump(this.child.stderr, (line) => {
      this.stderr = (this.stderr + line + "\n").slice(-1_000_000);
    });
  }

  async #pump(s: ReadableStream<Uint8Array>, onLine: (l: string) => void) {
    try {
      await forEachLine(s, onLine);
    } catch { /* the process ended */ }
  }

  /** Every member's latest status, index order (missing ones absent). */
  statuses(): BotStatus[] {
    return [...this.latest.values()].sort((a, b) => a.index - b.index);
  }

  /**
   * Waits until `pred` holds for every one of the `count` members' statuses read after now
   * (so a condition is judged on fresh lines); throws after `timeoutMs`.
   */
  async waitAll(pred: (s: BotStatus) => boolean, timeoutMs: number, what: string): Promise<void> {
    const since = realNowMs();
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const fresh = this.statuses().filter((s) => s.rxMs >= since);
      if (fresh.length === this.o.count && fresh.every(pred)) return;
      if (Date.now() > deadline) {
        const bad = this.statuses().filter((s) => !pred(s)).slice(0, 3);
        throw new Error(
          `${this.o.name} bots: ${what} not within ${timeoutMs} ms (${fresh.length} of ${this.o.count} reported; ` +
            `e.g. ${JSON.stringify(bad.map(brief))})\nstderr: ${this.stderr.slice(-1500)}`,
        );
      }
      await sleep(100);
    }
  }

  /** Sends one stdin command (`take N`, `select N FILE`, `play N`, `leave N`, …). */
  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Quits (stdin `quit`, then end of input); kills after 5 s. Idempotent. */
  stop(): Promise<void> {
    return this.#stopped ??= (async () => {
      await this.send("quit").catch(() => {});
      await this.#writer.close().catch(() => {});
      const t = setTimeout(() => {
        try {
          this.child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await this.exited;
      clearTimeout(t);
    })();
  }
}

/** A bot status without the bulky parts, for messages. */
export function brief(s: BotStatus) {
  return {
    index: s.index,
    me: s.me,
    phase: s.phase,
    director: s.director,
    links: s.links,
    locked: s.locked,
    files: s.files.map((f) => `${f.id.slice(0, 8)} ${Math.round(f.progress * 100)}%`),
    rejected: s.stats.chunksRejected,
  };
}

// ---------------------------------------------------------------- the rig

export interface SwarmRigOptions {
  /** Sinks of the private PulseAudio (0: none, for bots-only runs). */
  devices: number;
  /** Serve HTTPS with a test certificate. */
  tls?: boolean;
}

/** The server, the sound server, pages and bots of one run; `stop()` ends all of it. */
export class SwarmRig {
  readonly pages: SwarmPage[] = [];
  readonly bots: SwarmBots[] = [];
  readonly tmp: string;

  private constructor(
    readonly server: NsSwarmServer,
    readonly pulse: PrivatePulse | null,
    tmp: string,
  ) {
    this.tmp = tmp;
  }

  static async start(opts: SwarmRigOptions): Promise<SwarmRig> {
    const tmp = await Deno.makeTempDir({ prefix: "phaselock-swarm-" });
    let pulse: PrivatePulse | null = null;
    try {
      pulse = opts.devices > 0 ? await startPulse(opts.devices) : null;
      const server = await startNsServer({ tls: opts.tls, logDir: tmp });
      return new SwarmRig(server, pulse, tmp);
    } catch (e) {
      await pulse?.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  get base(): string {
    return this.server.base;
  }

  /** Opens a swarm page of `engine` on sink `sink` (not joined yet). */
  async openPage(engine: Engine, sink: number): Promise<SwarmPage> {
    if (!this.pulse) throw new Error("This rig has no PulseAudio: start it with devices > 0");
    const p = await openSwarmPage(engine, {
      pulse: this.pulse,
      sink,
      base: this.base,
      ignoreCertificateErrors: this.server.tls,
    });
    this.pages.push(p);
    return p;
  }

  /**
   * Opens a page, joins as `name` and waits until it is in the swarm with its audio running.
   * Firefox ESR's page now and then stops dead within seconds of Join (its main thread waiting
   * on its own audio IPC: a deadlock in Firefox, seen in about 1 of 10 joins under load, never
   * in Chromium; a CI run met it twice in a row): that is said loudly and tried again with a
   * new browser, up to three times in all.
   */
  async openAndJoin(
    engine: Engine,
    sink: number,
    key: string,
    name: string,
    ready = "v.phase === 'joined'",
  ): Promise<SwarmPage> {
    for (let attempt = 1;; attempt++) {
      const p = await this.openPage(engine, sink);
      await p.join(key, name);
      let frozen = false;
      try {
        await p.waitFor(`(${ready}) && d.output?.state === 'running'`, 20_000, "in the swarm");
        // Seconds of answering: the freeze comes within them.
        for (let i = 0; i < 6 && !frozen; i++) {
          await sleep(500);
          frozen = !(await p.answers(5000));
        }
      } catch (e) {
        if (await p.answers(5000)) throw e;
        frozen = true;
      }
      if (!frozen) return p;
      const msg = `${engine} page "${name}" froze after Join (attempt ${attempt})`;
      await p.close();
      this.pages.splice(this.pages.indexOf(p), 1);
      if (attempt >= 3 || engine !== "firefox") throw new Error(msg);
      console.warn(`${msg}: a known Firefox ESR audio deadlock; trying again with a new browser`);
      this.frozen.push(msg);
    }
  }

  /** Pages that froze and were replaced (for the report). */
  readonly frozen: string[] = [];

  /** Starts a bot process (its members join at once). */
  startBots(o: Omit<BotOptions, "base" | "env">): SwarmBots {
    const b = new SwarmBots({ ...o, base: this.base, env: this.server.clientEnv() });
    this.bots.push(b);
    return b;
  }

  /** This test process, every process below it, and the rig's PulseAudio (it daemonizes). */
  processes(): Set<number> {
    const out = new Set([Deno.pid, ...descendants(Deno.pid)]);
    try {
      out.add(Number(Deno.readTextFileSync(`${this.pulse?.dir}/pulse/pid`).trim()));
    } catch { /* no PulseAudio */ }
    return out;
  }

  /** Bytes the server's interface received and sent so far. */
  counters() {
    return this.server.ns.counters();
  }

  async stop(): Promise<void> {
    await Promise.all(this.pages.map((p) => p.close().catch(() => {})));
    await Promise.all(this.bots.map((b) => b.stop().catch(() => {})));
    await this.server.stop();
    await this.pulse?.stop();
    await Deno.remove(this.tmp, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------- measuring

/** CPU time (clock ticks) of every process, read from /proc without starting any process. */
export function cpuSnapshot(): Map<number, { ticks: number; cmd: string }> {
  const out = new Map<number, { ticks: number; cmd: string }>();
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").slice(0, 400);
      out.set(pid, { ticks: Number(f[11]) + Number(f[12]), cmd });
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/**
 * Where the machine's CPU went between two snapshots, by kind of process ("chromium renderer
 * 85 %, firefox 41 %, …", 100 % = one core), for the logs: sync figures mean little on a
 * machine that is saturated. With `mine` (this run's processes, {@link SwarmRig.processes}),
 * everything else is counted apart as "outside this run".
 */
export function cpuShares(
  a: Map<number, { ticks: number; cmd: string }>,
  b: Map<number, { ticks: number; cmd: string }>,
  seconds: number,
  mine?: Set<number>,
): { total: number; outside: number; text: string } {
  const groups = new Map<string, number>();
  let total = 0, outside = 0;
  for (const [pid, x] of b) {
    const d = x.ticks - (a.get(pid)?.ticks ?? 0);
    if (d <= 0) continue;
    const c = x.cmd;
    const theirs = mine !== undefined && !mine.has(pid);
    if (theirs) outside += d;
    const kind = (theirs ? "outside this run: " : "") +
      (c.includes("chromium")
        ? `chromium ${/--type=(\S+)/.exec(c)?.[1] ?? "browser"}`
        : c.includes("firefox")
        ? "firefox"
        : c.includes("swarm/bot.ts")
        ? "bots"
        : / serve --headless/.test(c)
        ? "server"
        : c.split(" ")[0].split("/").pop() || "other");
    groups.set(kind, (groups.get(kind) ?? 0) + d);
    total += d;
  }
  const pct = (ticks: number) => ticks / seconds; // 100 ticks a second
  return {
    total: pct(total),
    outside: pct(outside),
    text: [...groups].sort((x, y) => y[1] - x[1]).filter(([, v]) => pct(v) >= 1)
      .map(([k, v]) => `${k} ${pct(v).toFixed(0)} %`).join(", "),
  };
}

/**
 * Lags (ms) of channel `k` against channel `ref` of a bus recording, per window (0.25 s, every
 * 0.25 s) with sound on both and a clear correlation peak within ±`maxLagMs`, between two
 * recording times (s); positive: `k` is late. A window whose lag is beyond the search gives no
 * point: count the missing ones. A longer window finds larger lags (±150 ms needs ~1 s).
 */
export function lagsAgainst(
  rec: { channels: Float32Array[]; rateHz: number },
  ref: number,
  k: number,
  fromSec = 0,
  toSec = Infinity,
  maxLagMs = 40,
  windowSec = 0.25,
): { atSec: number; lagMs: number }[] {
  const a = rec.channels[ref], b = rec.channels[k];
  const from = Math.max(0, Math.round(fromSec * rec.rateHz));
  const to = Math.min(a.length, Math.round(toSec * rec.rateHz));
  if (to <= from) return [];
  return lagSeries(a.subarray(from, to), b.subarray(from, to), {
    maxLagMs,
    windowSec,
    hopSec: 0.25,
  }).points.map((p) => ({ atSec: p.atSec + fromSec, lagMs: p.lagMs }));
}

/** p95 of |lag| and a compact series, for reports. */
export function lagSummary(lags: { atSec: number; lagMs: number }[]) {
  const abs = lags.map((l) => Math.abs(l.lagMs));
  return {
    windows: lags.length,
    p95: percentile(abs, 95),
    median: percentile(lags.map((l) => l.lagMs), 50),
    max: abs.length ? Math.max(...abs) : NaN,
    series: lags.map((l) => l.lagMs.toFixed(1)).join(" "),
  };
}

/** Root-mean-square of a recorded channel between two recording times (s). */
export function rmsOf(
  rec: { channels: Float32Array[]; rateHz: number },
  k: number,
  fromSec: number,
  toSec: number,
): number {
  const x = rec.channels[k];
  const i0 = Math.max(0, Math.round(fromSec * rec.rateHz));
  const i1 = Math.min(x.length, Math.round(toSec * rec.rateHz));
  let s = 0;
  for (let i = i0; i < i1; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, i1 - i0));
}
