/**
 * LAN discovery in the app, with real processes and real mDNS between network namespaces on a
 * private bridge (tests/harness/netns.ts): app A (namespace 0, `--no-window`, default bind and
 * advertising) creates a jam; app B (namespace 1) lists it on Home, sees its peer count change
 * live when a headless peer (namespace 2) joins, joins it by the listed address, and goes back
 * Home with "Host disconnected — session ended" when A ends the jam.
 *
 * An app's control server listens on loopback inside its namespace, so each app is driven by an
 * *agent*: this same file, started with `PL_DISCOVERY_AGENT=1` behind `ip netns exec`, which
 * connects to the control WebSocket as the UI does, prints every event it receives as
 * `{"type":"ctl","e":EVENT}` and sends each line of its stdin as a command.
 */
import { assertEquals, assertTrue } from "./assert.ts";
import { createLan, type Lan } from "./harness/netns.ts";
import { AppProcess, type Event } from "./harness/proc.ts";
import { PROTOCOL_VERSION } from "../session/protocol.ts";

const SELF = new URL(import.meta.url).pathname;
const SESSION = "Friday Night Vibes";
const JAM_PORT = 7420;
/** How long the LAN may take to show a change on Home (it browses every ~2.5 s). */
const LIST_MS = 10_000;

// ======================= the agent (runs inside a namespace) ===============================

/** Bridges the app's control WebSocket to stdio: events out as JSON lines, commands in. */
async function agentMain(url: string) {
  const ws = new WebSocket(url);
  ws.onopen = () => console.log(JSON.stringify({ type: "agent-open" }));
  ws.onerror = () => console.log(JSON.stringify({ type: "agent-error" }));
  ws.onmessage = (m) => console.log(JSON.stringify({ type: "ctl", e: JSON.parse(String(m.data)) }));
  ws.onclose = (e) => console.log(JSON.stringify({ type: "ctl-closed", code: e.code }));
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "quit") Deno.exit(0);
      if (line && ws.readyState === WebSocket.OPEN) ws.send(line);
    }
  }
  Deno.exit(0);
}

if (import.meta.main && Deno.env.get("PL_DISCOVERY_AGENT") === "1") {
  await agentMain(Deno.env.get("PL_DISCOVERY_WS")!);
}

// ======================= the test side =====================================================

/** What a test started, undone in reverse order, also when it fails or runs over. */
class Scope {
  readonly #undo: (() => unknown)[] = [];
  /** Processes whose output is worth showing when the test fails. */
  readonly procs: { name: string; proc: AppProcess }[] = [];
  #closed = false;
  /** Undoes `fn` at close; at once when the scope is closed already (a test that ran over). */
  defer(fn: () => unknown) {
    if (this.#closed) {
      (async () => await fn())().catch(() => {});
    } else this.#undo.push(fn);
  }
  async close() {
    this.#closed = true;
    for (const fn of this.#undo.splice(0).reverse()) {
      try {
        await fn();
      } catch { /* keep undoing */ }
    }
  }
}

/** The exit status, or null when the process still runs after `ms`. */
async function exitWithin(p: AppProcess, ms: number): Promise<Deno.CommandStatus | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p.exited,
      new Promise<null>((r) => timer = setTimeout(() => r(null), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM (the app ends its session cleanly), SIGKILL after 5 s; by the child's pid. */
async function stop(p: AppProcess, signal: Deno.Signal = "SIGTERM") {
  if (await exitWithin(p, 0)) return;
  p.kill(signal);
  if (!await exitWithin(p, 5000)) {
    p.kill("SIGKILL");
    await p.exited;
  }
}

/** The app without a window in namespace `i`, with its own folders under `dir`. */
async function startApp(scope: Scope, lan: Lan, i: number, dir: string) {
  const app = new AppProcess([
    ...["--no-window", "--audio", "null"],
    ...["--config-dir", `${dir}/cfg`, "--cache-dir", `${dir}/cache`, "--log-file", `${dir}/log`],
  ], { prefix: lan.exec(i) });
  scope.defer(() => stop(app));
  scope.procs.push({ name: `app ${i}`, proc: app });
  const ui = await app.waitFor((e) => e.type === "ui", 60_000, `app ${i}'s UI address`);
  const url = new URL(ui.url as string);
  assertEquals(url.hostname, "127.0.0.1");
  const token = new URLSearchParams(url.hash.slice(1)).get("token");
  assertTrue(token, `a token in ${url}`);
  const agent = new Agent(scope, lan, i, `ws://127.0.0.1:${url.port}/ws?token=${token}`);
  await agent.proc.waitFor(
    (e) => e.type === "agent-open" || e.type === "agent-error",
    30_000,
    `agent ${i} to connect`,
  );
  assertTrue(agent.proc.events.some((e) => e.type === "agent-open"), `agent ${i} connected`);
  return { app, agent };
}

/** A UI client of the app in namespace `i` (see {@link agentMain}). */
class Agent {
  readonly proc: AppProcess;
  constructor(scope: Scope, lan: Lan, readonly i: number, url: string) {
    this.proc = new AppProcess([], {
      prefix: lan.exec(i),
      script: SELF,
      env: { PL_DISCOVERY_AGENT: "1", PL_DISCOVERY_WS: url },
    });
    scope.defer(() => this.proc.quit());
    scope.procs.push({ name: `agent ${i}`, proc: this.proc });
  }
  async send(cmd: Record<string, unknown>) {
    await this.proc.send(JSON.stringify(cmd));
  }
  mark(): number {
    return this.proc.events.length;
  }
  /** The first control event at or after `from` that matches, with the time it arrived. */
  async wait(
    pred: (e: Event) => boolean,
    what: string,
    timeoutMs: number,
    from = 0,
  ): Promise<Event & { rxMs: number }> {
    const events = this.proc.events;
    const r = await this.proc.waitFor(
      (x) => x.type === "ctl" && pred(x.e as Event) && events.indexOf(x) >= from,
      timeoutMs,
      `${what} (app ${this.i})`,
    );
    return { ...(r.e as Event), rxMs: r.rxMs! };
  }
  /** Every control event of `type` since `from`. */
  since(from: number, type: string): Event[] {
    return this.proc.events.slice(from)
      .filter((x) => x.type === "ctl" && (x.e as Event).type === type)
      .map((x) => x.e as Event);
  }
}

/** The one listed jam named {@link SESSION} in a `jams` event, if any. */
function listed(e: Event) {
  const jams = e.jams as Record<string, unknown>[];
  return jams.find((j) => j.session === SESSION);
}

Deno.test({
  name: "app: a jam created in one namespace is listed on another app's Home by mDNS, its " +
    "peer count updates live, the listed address joins it, and its end sends the peer Home",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const limitMs = 150_000;
    const scope = new Scope();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timings: Record<string, number> = {};
    const startedAt = performance.now();
    let lan!: Lan, tmp!: string;
    try {
      lan = await createLan(3);
      scope.defer(() => lan.destroy());
      tmp = await Deno.makeTempDir({ prefix: "phaselock-discovery-" });
      scope.defer(() => Deno.remove(tmp, { recursive: true }));
      await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the test took longer than ${limitMs / 1000} s`)),
            limitMs,
          );
        }),
      ]);
      timings.total = Math.round(performance.now() - startedAt);
      console.log(`timings (ms): ${JSON.stringify(timings)}`);
    } catch (e) {
      for (const { name, proc } of scope.procs) {
        console.error(
          `--- ${name}: last events ${JSON.stringify(proc.events.slice(-6))}\n` +
            `stderr: ${proc.stderr.slice(-1500)}`,
        );
      }
      throw e;
    } finally {
      clearTimeout(timer);
      await scope.close();
    }

    async function run() {
      const hostIp = lan.ip(0);
      const [a, b] = await Promise.all([
        startApp(scope, lan, 0, `${tmp}/a`),
        startApp(scope, lan, 1, `${tmp}/b`),
      ]);
      await Promise.all([
        a.agent.wait((e) => e.type === "home", "Home", 15_000),
        b.agent.wait((e) => e.type === "home", "Home", 15_000),
      ]);

      // 1. A creates the jam: default bind (all interfaces), announced on the LAN.
      const aCreate = a.agent.mark();
      await a.agent.send({ cmd: "create", session: SESSION, name: "Alex", port: JAM_PORT });
      const hosting = await a.agent.wait((e) => e.type === "session", "the jam", 15_000, aCreate);
      assertEquals(
        [hosting.role, hosting.session, hosting.name, hosting.port, hosting.host],
        ["host", SESSION, "Alex", JAM_PORT, hostIp],
        JSON.stringify(hosting),
      );

      // 2. B, on Home, lists it with everything the Join list shows.
      const first = await b.agent.wait(
        (e) => e.type === "jams" && !!listed(e),
        "the jam listed",
        LIST_MS,
      );
      timings.listed = Math.round(first.rxMs - hosting.rxMs);
      assertEquals(first.jams, [{
        session: SESSION,
        host: "Alex",
        address: hostIp,
        port: JAM_PORT,
        peers: 0,
        maxPeers: 5,
        protocolVersion: PROTOCOL_VERSION,
      }], "the only jam on this LAN, as listed");

      // 3. A headless peer in namespace 2 joins: B's list follows without any action.
      const aKim = a.agent.mark();
      const bKim = b.agent.mark();
      const kimDir = `${tmp}/kim`;
      const kim = new AppProcess([
        ...["join", "--headless", `${hostIp}:${JAM_PORT}`, "--as", "Kim", "--audio", "null"],
        ...["--cache-dir", `${kimDir}/cache`, "--config-dir", `${kimDir}/cfg`],
        ...["--log-file", `${kimDir}/log`],
      ], { prefix: lan.exec(2) });
      scope.defer(() => stop(kim));
      scope.procs.push({ name: "kim", proc: kim });
      const kimIn = await kim.waitFor((e) => e.type === "session", 30_000, "Kim's session");
      assertEquals([kimIn.role, kimIn.session, kimIn.host], ["peer", SESSION, "Alex"]);
      const kimJoined = await a.agent.wait(
        (e) => e.type === "peer-joined" && e.name === "Kim",
        "Kim on the host",
        15_000,
        aKim,
      );
      const withKim = await b.agent.wait(
        (e) => e.type === "jams" && listed(e)?.peers === 1,
        "the listing with 1 peer",
        LIST_MS,
        bKim,
      );
      timings.peerCountUpdated = Math.round(withKim.rxMs - kimJoined.rxMs);
      assertEquals(withKim.jams, [{
        session: SESSION,
        host: "Alex",
        address: hostIp,
        port: JAM_PORT,
        peers: 1,
        maxPeers: 5,
        protocolVersion: PROTOCOL_VERSION,
      }]);
      // The list never lost the jam or showed it twice meanwhile.
      for (const e of b.agent.since(bKim, "jams")) {
        assertEquals((e.jams as unknown[]).length, 1, `B's list: ${JSON.stringify(e)}`);
      }

      // 4. B joins by the listed address.
      const jam = listed(withKim)!;
      const aSam = a.agent.mark();
      const bJoin = b.agent.mark();
      const joinAt = performance.timeOrigin + performance.now();
      await b.agent.send({ cmd: "join", address: `${jam.address}:${jam.port}`, name: "Sam" });
      const joined = await b.agent.wait((e) => e.type === "session", "B's session", 15_000, bJoin);
      timings.joined = Math.round(joined.rxMs - joinAt);
      assertEquals(
        [joined.role, joined.session, joined.name, joined.host],
        ["peer", SESSION, "Sam", "Alex"],
        JSON.stringify(joined),
      );
      const samJoined = await a.agent.wait(
        (e) => e.type === "peer-joined" && e.name === "Sam",
        "Sam on the host",
        15_000,
        aSam,
      );
      assertTrue(samJoined.id !== kimJoined.id, "Sam is a new peer");
      assertEquals(b.agent.since(bJoin, "error"), [], "no error on B while joining");
      // The host sees both peers.
      await a.agent.wait(
        (e) =>
          e.type === "peers" &&
          JSON.stringify((e.peers as { name: string }[]).map((p) => p.name).sort()) ===
            '["Kim","Sam"]',
        "both peers in the host's list",
        10_000,
        aSam,
      );

      // 5. A ends the jam: B goes Home with the sentence, A goes Home, Kim exits (code 3).
      const aLeave = a.agent.mark();
      const bLeave = b.agent.mark();
      const leaveAt = performance.timeOrigin + performance.now();
      await a.agent.send({ cmd: "leave" });
      const aHome = await a.agent.wait((e) => e.type === "home", "A Home", 15_000, aLeave);
      assertEquals(aHome.message, undefined, "the host leaves without a message");
      const bHome = await b.agent.wait((e) => e.type === "home", "B Home", 15_000, bLeave);
      timings.peerHome = Math.round(bHome.rxMs - leaveAt);
      assertEquals(bHome.message, "Host disconnected — session ended");
      assertEquals(bHome.peerName, "Sam", "Home remembers the name used to join");
      assertEquals(bHome.address, `${hostIp}:${JAM_PORT}`, "…and the address");
      const kimExit = await exitWithin(kim, 10_000);
      assertEquals(kimExit?.code, 3, "the headless peer exits with 'host gone'");
      assertTrue(
        kim.events.some((e) =>
          e.type === "host-disconnected" && e.message === "Host disconnected — session ended"
        ),
        "the headless peer says why",
      );
      // Back on Home, B browses again and the ended jam is gone from its list.
      const gone = await b.agent.wait(
        (e) => e.type === "jams" && !listed(e),
        "the jam gone from B's list",
        LIST_MS,
        bLeave,
      );
      timings.delisted = Math.round(gone.rxMs - leaveAt);
      // Both apps are still running (a jam ending is not the app quitting).
      assertEquals(await exitWithin(a.app, 0), null, "A still runs");
      assertEquals(await exitWithin(b.app, 0), null, "B still runs");
    }
  },
});
