/**
 * The swarm server on real loopback sockets: real WebSocket clients join, relay and misbehave;
 * HTTPS with a certificate the test makes; and `phaselock serve --headless` as a process.
 * Every wait is bounded, and every socket, client and server is closed before a test ends.
 */
import { assertEquals, assertTrue } from "../tests/assert.ts";
import { makeTestCert } from "../tests/harness/tls.ts";
import { forEachLine } from "../tests/harness/proc.ts";
import { main, parseFlags } from "../main.ts";
import { EXIT } from "../app/options.ts";
import { iceServersOf, parseIceServer, servePortOf } from "../app/serve.ts";
import {
  decodeFromServer,
  type FromServer,
  MAX_BYTES_PER_SEC,
  MAX_CONTROL_BYTES,
  MAX_FRAMES_PER_SEC,
  MAX_MEMBERS,
  type SwarmState,
  type ToServer,
} from "./protocol.ts";
import {
  MAX_REFUSED_FRAMES,
  memberName,
  RATE_WINDOW_MS,
  startSwarmServer,
  SWARM_LIMITS,
  type SwarmLogEntry,
  type SwarmServer,
  type SwarmServerOptions,
} from "./server.ts";

const ROOT = new URL("../", import.meta.url);
const A = "a".repeat(64), B = "b".repeat(64);
const WINDOW_SEC = RATE_WINDOW_MS / 1000;
const ASSETS = {
  html: "<!doctype html><title>PhaseLock swarm</title><script src=/swarm.js></script>",
  css: "body { color: red }",
  js: "console.log('swarm page');",
  worker: "self.onmessage = () => {};",
};
const realNow = () => performance.timeOrigin + performance.now();

/** `p`, or a failure naming `what` after `ms`: a broken server must fail the test, not hang it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms)
  );
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Of<T extends FromServer["type"]> = Extract<FromServer, { type: T }>;

/** A member's socket: every frame from the server is checked with the members' own decoder. */
class Client {
  readonly inbox: FromServer[] = [];
  /** Frames that did not pass `decodeFromServer`: the server must never send one. */
  readonly invalid: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #wake: (() => void)[] = [];
  #isClosed = false;

  private constructor(readonly ws: WebSocket, readonly label: string) {
    this.closed = new Promise((resolve) =>
      ws.onclose = (e) => {
        this.#isClosed = true;
        resolve({ code: e.code, reason: e.reason });
        for (const w of this.#wake.splice(0)) w();
      }
    );
    ws.onmessage = (e) => {
      try {
        this.inbox.push(decodeFromServer(e.data));
      } catch (err) {
        this.invalid.push(`${(err as Error).message}: ${String(e.data).slice(0, 200)}`);
      }
      for (const w of this.#wake.splice(0)) w();
    };
  }

  static async open(url: string, label: string, client?: Deno.HttpClient): Promise<Client> {
    const ws = client ? new WebSocket(url, { client }) : new WebSocket(url);
    const c = new Client(ws, label);
    await within(
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = (e) => reject(new Error(`${label}: ${(e as ErrorEvent).message}`));
      }),
      3000,
      `${label} connecting`,
    );
    return c;
  }

  send(m: ToServer | Record<string, unknown>) {
    this.ws.send(JSON.stringify(m));
  }

  /** The first message of `type` not taken yet (others stay in the inbox). */
  async next<T extends FromServer["type"]>(type: T, ms = 3000): Promise<Of<T>> {
    const deadline = performance.now() + ms;
    while (true) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Of<T>;
      const left = deadline - performance.now();
      if (left <= 0 || this.#isClosed) {
        throw new Error(
          `${this.label}: no "${type}" ${this.#isClosed ? "before the socket closed" : ""}` +
            ` (inbox: ${JSON.stringify(this.inbox).slice(0, 400)})`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Asserts that nothing of `type` (or nothing at all) arrives within `ms`. */
  async nothing(ms: number, type?: FromServer["type"]) {
    await sleep(ms);
    const got = this.inbox.filter((m) => !type || m.type === type);
    assertEquals(got, [], `${this.label} should have received nothing${type ? ` of ${type}` : ""}`);
  }

  /** Waits for the server to close this socket; its code and reason. */
  closedByServer(ms = 3000) {
    return within(this.closed, ms, `${this.label} closed by the server`);
  }

  async close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close();
    }
    await within(this.closed, 3000, `${this.label} closing`);
    assertEquals(this.invalid, [], `${this.label} got frames its decoder refuses`);
  }
}

/** A server on 127.0.0.1 at a free port, its log, and the clients to close after the test. */
async function withServer(
  fn: (h: {
    server: SwarmServer;
    ws: string;
    http: string;
    logs: SwarmLogEntry[];
    open(label: string): Promise<Client>;
    join(swarm: string, name: string, label?: string): Promise<[Client, Of<"welcome">]>;
  }) => Promise<void>,
  opts: SwarmServerOptions = {},
) {
  const logs: SwarmLogEntry[] = [];
  const server = await startSwarmServer({
    port: 0,
    hostname: "127.0.0.1",
    assets: () => Promise.resolve(ASSETS),
    log: (e) => logs.push(e),
    ...opts,
  });
  const clients: Client[] = [];
  const ws = `ws://127.0.0.1:${server.port}/swarm`;
  const open = async (label: string) => {
    const c = await Client.open(ws, label);
    clients.push(c);
    return c;
  };
  const join = async (swarm: string, name: string, label = name) => {
    const c = await open(label);
    c.send({ type: "join", protocol: 1, swarm, name });
    return [c, await c.next("welcome")] as [Client, Of<"welcome">];
  };
  try {
    await fn({ server, ws, http: server.url, logs, open, join });
  } finally {
    for (const c of clients) await c.close();
    await within(server.close(), 5000, "server close");
  }
}

async function metrics(http: string): Promise<Record<string, unknown>> {
  const r = await fetch(`${http}metrics`);
  assertEquals(r.status, 200);
  return await r.json();
}

const offer = { type: "offer" as const, sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" };
const status: SwarmState = { kind: "status", have: [], locked: true, playing: false };

Deno.test("members get increasing ids, deduplicated names, and hear of joins and leaves", async () => {
  await withServer(async ({ join }) => {
    const [alex, w1] = await join(A, "  Alex  ", "alex");
    assertEquals(w1, { type: "welcome", you: 1, members: [], iceServers: [] });
    const [alex2, w2] = await join(A, "Alex", "alex2");
    assertEquals(w2.you, 2);
    assertEquals(w2.members, [{ id: 1, name: "Alex" }]);
    assertEquals((await alex.next("joined")).member, { id: 2, name: "Alex (2)" });
    const [guest, w3] = await join(A, "   ", "guest");
    assertEquals(w3.you, 3);
    assertEquals(w3.members, [{ id: 1, name: "Alex" }, { id: 2, name: "Alex (2)" }]);
    assertEquals((await alex.next("joined")).member, { id: 3, name: "Guest" });
    assertEquals((await alex2.next("joined")).member, { id: 3, name: "Guest" });
    const [, w4] = await join(A, "alex", "alex3");
    assertEquals(w4.you, 4);
    assertEquals((await guest.next("joined")).member, { id: 4, name: "alex (3)" });
    await alex.next("joined");
    await alex2.next("joined");

    // A member that says bye and one whose socket just closes: both are gone for the others.
    guest.send({ type: "bye" });
    assertEquals((await guest.closedByServer()).code, 1000);
    assertEquals((await alex.next("left")).id, 3);
    await alex2.close();
    assertEquals((await alex.next("left")).id, 2);
    // Ids are never reused while the swarm lives; names free up.
    const [, w5] = await join(A, "Alex", "alex4");
    assertEquals(w5.you, 5);
    assertEquals((await alex.next("joined")).member, { id: 5, name: "Alex (2)" });
  });
});

Deno.test("names: control and bidi characters go, long names are cut to fit their suffix", () => {
  assertEquals(memberName("\u202eSam\u0007\n", []), "Sam");
  assertEquals(memberName("", ["Guest"]), "Guest (2)");
  const long = "x".repeat(40);
  assertEquals(memberName(long, [long]), "x".repeat(36) + " (2)");
  // A character outside the BMP is never cut in half.
  const emoji = "🎵".repeat(20); // 40 UTF-16 units
  assertEquals(memberName(emoji, [emoji]), "🎵".repeat(18) + " (2)");
});

Deno.test("a signal reaches only its member, in the same swarm; an unknown one is an error", async () => {
  await withServer(async ({ join }) => {
    const [a1] = await join(A, "A1");
    const [a2] = await join(A, "A2");
    const [b1] = await join(B, "B1");
    const [b2] = await join(B, "B2");
    await a1.next("joined");
    await b1.next("joined");
    a1.send({ type: "signal", to: 2, description: offer });
    assertEquals(await a2.next("signal"), { type: "signal", from: 1, description: offer });
    const candidate = { candidate: "candidate:1 1 udp 2122260223 10.0.0.2 54400 typ host" };
    a2.send({ type: "signal", to: 1, candidate });
    assertEquals(await a1.next("signal"), { type: "signal", from: 2, candidate });
    // B2 has id 2 as well, in another swarm: it must never see A1's offer.
    await b2.nothing(200, "signal");
    await b1.nothing(0, "signal");
    a1.send({ type: "signal", to: 9, description: offer });
    assertTrue(/no member #9/.test((await a1.next("error")).message));
    a1.send({ type: "signal", to: 1, description: offer });
    assertTrue(/no member #1/.test((await a1.next("error")).message));
    await a2.nothing(100, "signal");
  });
});

Deno.test("state goes to every other member of the swarm, tagged, and not back to the sender", async () => {
  await withServer(async ({ join }) => {
    const [a1] = await join(A, "A1");
    const [a2] = await join(A, "A2");
    const [a3] = await join(A, "A3");
    const [b1] = await join(B, "B1");
    const director: SwarmState = {
      kind: "director",
      term: 3,
      transport: { file: "c".repeat(64), playing: true, atMs: 1.7e12, fromSec: 12.5 },
    };
    a2.send({ type: "state", state: director });
    assertEquals(await a1.next("state"), { type: "state", from: 2, state: director });
    assertEquals(await a3.next("state"), { type: "state", from: 2, state: director });
    a3.send({ type: "state", state: status });
    assertEquals((await a2.next("state")).from, 3);
    await a1.next("state");
    await a2.nothing(150, "state");
    await a3.nothing(0, "state");
    await b1.nothing(0, "state");
  });
});

Deno.test("ping gets a pong with t1 back and the server's receive and send times", async () => {
  await withServer(async ({ join }) => {
    const [c] = await join(A, "Clock");
    for (let i = 0; i < 5; i++) {
      const t1 = realNow();
      c.send({ type: "ping", t1 });
      const p = await c.next("pong");
      const t4 = realNow();
      assertEquals(p.t1, t1);
      // One process, one clock: the server's times fall between sending and receiving.
      assertTrue(t1 <= p.t2 && p.t2 <= p.t3 && p.t3 <= t4, JSON.stringify({ ...p, t4 }));
      assertTrue(t4 - t1 < 1000);
    }
  });
  // With a clock of its own, t2 is read at receipt and t3 later, just before sending.
  let tick = 5000;
  await withServer(async ({ join }) => {
    const [c] = await join(A, "Clock");
    tick = 5000;
    c.send({ type: "ping", t1: 42 });
    assertEquals(await c.next("pong"), { type: "pong", t1: 42, t2: 5001, t3: 5002 });
  }, { now: () => ++tick });
});

Deno.test("a join of another protocol version is refused with both versions named", async () => {
  await withServer(async ({ open, logs }) => {
    const c = await open("old page");
    c.send({ type: "join", protocol: 7, swarm: A, name: "Old" });
    const r = await c.next("refused");
    assertTrue(/protocol 1\b/.test(r.reason) && /protocol 7\b/.test(r.reason), r.reason);
    await c.closedByServer();
    assertTrue(logs.some((l) => l.type === "swarm-refused"));
  });
});

Deno.test("the 21st member is refused: the swarm is full; other swarms still open", async () => {
  await withServer(async ({ join, open, http }) => {
    const members: Client[] = [];
    for (let i = 1; i <= MAX_MEMBERS; i++) {
      const [c, w] = await join(A, `M${i}`);
      assertEquals(w.you, i);
      members.push(c);
    }
    const late = await open("M21");
    late.send({ type: "join", protocol: 1, swarm: A, name: "M21" });
    assertEquals((await late.next("refused")).reason, "This swarm is full (20 members).");
    await late.closedByServer();
    assertEquals((await metrics(http)).members, MAX_MEMBERS);
    const [, w] = await join(B, "Elsewhere");
    assertEquals(w.you, 1);
    // The refused one never joined: nobody heard of it.
    for (const m of members) await m.nothing(0, "left");
  });
});

Deno.test("a swarm dissolves with its last member; /metrics counts and names nothing", async () => {
  await withServer(async ({ join, http }) => {
    const [a1] = await join(A, "Alexandra Secretname");
    const [a2] = await join(A, "Bo");
    const [b1] = await join(B, "Cy");
    const m = await metrics(http);
    assertEquals(Object.keys(m).sort(), [
      "members",
      "messagesPerSec",
      "refusedMessages",
      "swarms",
      "uptimeSec",
    ]);
    assertEquals(m.swarms, 2);
    assertEquals(m.members, 3);
    assertTrue(typeof m.messagesPerSec === "number" && (m.messagesPerSec as number) > 0);
    const text = JSON.stringify(m);
    for (const secret of ["Secretname", "Bo", "Cy", "aaaa", "bbbb"]) {
      assertTrue(!text.includes(secret), `${secret} in ${text}`);
    }
    a1.send({ type: "bye" });
    await a1.closedByServer();
    await a2.close();
    await within(
      (async () => {
        while ((await metrics(http)).swarms !== 1) await sleep(20);
      })(),
      3000,
      "swarm A dissolving",
    );
    b1.send({ type: "bye" });
    await b1.closedByServer();
    await within(
      (async () => {
        while ((await metrics(http)).members !== 0) await sleep(20);
      })(),
      3000,
      "every member gone",
    );
    assertEquals((await metrics(http)).swarms, 0);
    // A new life of swarm A counts from 1 again.
    const [, w] = await join(A, "New");
    assertEquals(w.you, 1);
  });
});

Deno.test("malformed, oversized, binary and unknown frames get an error; the connection stays", async () => {
  await withServer(async ({ open, http, logs }) => {
    const c = await open("sloppy");
    const frames: [string | Uint8Array, RegExp][] = [
      ["not json", /not valid JSON/],
      ["x".repeat(MAX_CONTROL_BYTES + 1), /exceeds the 16384-byte cap/],
      [new Uint8Array([1, 2, 3]), /binary frames are not accepted/],
      [JSON.stringify({ type: "ping", t1: 1, file: "song.mp3" }), /unknown field "file"/],
      [JSON.stringify({ type: "upload", data: "AAAA" }), /unknown message type "upload"/],
      [JSON.stringify({ type: "join", protocol: 1, swarm: "not-a-hash", name: "X" }), /swarm/],
      [JSON.stringify({ type: "ping", t1: 1 }), /Join a swarm first/],
    ];
    for (const [frame, re] of frames) {
      c.ws.send(frame);
      const e = await c.next("error");
      assertTrue(re.test(e.message), `${e.message} !~ ${re}`);
    }
    c.send({ type: "join", protocol: 1, swarm: A, name: "Sloppy" });
    assertEquals((await c.next("welcome")).you, 1);
    // After joining, a join again and a signal without payload are refused too.
    c.send({ type: "join", protocol: 1, swarm: A, name: "Again" });
    assertTrue(/already joined/.test((await c.next("error")).message));
    c.send({ type: "signal", to: 1 });
    assertTrue(/description or a candidate/.test((await c.next("error")).message));
    c.send({ type: "ping", t1: 1 });
    await c.next("pong");
    assertEquals((await metrics(http)).refusedMessages, frames.length + 2);
    assertTrue(logs.filter((l) => l.type === "swarm-error").length === frames.length + 2);
    // Nothing a frame carried is logged beyond the validator's sentence.
    assertTrue(!JSON.stringify(logs).includes("song.mp3"));
  });
});

Deno.test(`more than ${MAX_REFUSED_FRAMES} refused frames close the connection (1008)`, async () => {
  await withServer(async ({ open, join }) => {
    const c = await open("garbage");
    for (let i = 0; i <= MAX_REFUSED_FRAMES; i++) c.ws.send("garbage");
    const { code, reason } = await c.closedByServer();
    assertEquals(code, 1008);
    assertTrue(/refused/.test(reason), reason);
    assertEquals(c.inbox.filter((m) => m.type === "error").length, MAX_REFUSED_FRAMES + 1);
    // The server goes on for everyone else.
    assertEquals((await join(A, "Fine"))[1].you, 1);
  });
});

Deno.test("a member flooding frames or bytes is cut off (1008) and its swarm told", async () => {
  await withServer(async ({ join }) => {
    const [watcher] = await join(A, "Watcher");
    const [flood] = await join(A, "Flood");
    await watcher.next("joined");
    // The cap is a window's worth of frames; the join was one. One more ping than that is the cut.
    // (Sent exactly: a client that goes on sending after the server's close frame sees the
    // connection dropped rather than the close, which the next member checks.)
    for (let i = 1; i <= MAX_FRAMES_PER_SEC * WINDOW_SEC; i++) flood.send({ type: "ping", t1: i });
    const cut = await flood.closedByServer();
    assertEquals(cut.code, 1008);
    assertTrue(
      new RegExp(`more than ${MAX_FRAMES_PER_SEC} messages a second`).test(cut.reason),
      cut.reason,
    );
    assertEquals(
      flood.inbox.filter((m) => m.type === "pong").length,
      MAX_FRAMES_PER_SEC * WINDOW_SEC - 1,
    );
    assertEquals((await watcher.next("left")).id, 2);

    // Fewer frames, but more bytes than a window of the byte cap: big (legal-sized) SDP offers.
    const [heavy] = await join(A, "Heavy");
    await watcher.next("joined");
    const sdp = "v=0\r\n" + "a=x\r\n".repeat(2000); // 10 KB: under the frame and SDP caps
    const frame = JSON.stringify({ type: "signal", to: 1, description: { type: "offer", sdp } });
    let bytes = JSON.stringify({ type: "join", protocol: 1, swarm: A, name: "Heavy" }).length;
    let sent = 0;
    while (bytes <= MAX_BYTES_PER_SEC * WINDOW_SEC) {
      heavy.ws.send(frame);
      bytes += frame.length;
      sent++;
    }
    assertTrue(sent < MAX_FRAMES_PER_SEC * WINDOW_SEC, `${sent} frames`);
    const cut2 = await heavy.closedByServer();
    assertEquals(cut2.code, 1008);
    assertTrue(
      new RegExp(`more than ${MAX_BYTES_PER_SEC / 1024} KB a second`).test(cut2.reason),
      cut2.reason,
    );
    assertEquals((await watcher.next("left")).id, 3);
    // Every offer but the one over the cap was relayed; that one was not.
    const relayed = watcher.inbox.filter((m) => m.type === "signal").length;
    assertEquals(relayed, sent - 1);

    // A member that keeps sending long after the cut is dropped all the same.
    const [hose] = await join(A, "Hose");
    await watcher.next("joined");
    for (let i = 0; i < 500 && hose.ws.readyState === WebSocket.OPEN; i++) {
      hose.send({ type: "ping", t1: i });
    }
    await hose.closedByServer();
    assertEquals((await watcher.next("left")).id, 4);
  });
});

Deno.test("a connection that does not join in time is closed", async () => {
  await withServer(async ({ open, http }) => {
    const c = await open("idle");
    const t0 = performance.now();
    const { code, reason } = await c.closedByServer(3000);
    assertEquals(code, 1008);
    assertEquals(reason, "join timeout");
    assertTrue(performance.now() - t0 >= 250);
    assertEquals((await metrics(http)).members, 0);
  }, { limits: { joinTimeoutMs: 300 } });
});

Deno.test("connections waiting to join are capped; a join frees a place", async () => {
  assertEquals(SWARM_LIMITS.joinTimeoutMs, 10_000);
  await withServer(async ({ open, ws }) => {
    const first = await open("first");
    await open("second");
    let refused = "";
    await Client.open(ws, "third").then(
      (c) => c.close(),
      (e) => refused = (e as Error).message,
    );
    assertTrue(/503/.test(refused), refused);
    first.send({ type: "join", protocol: 1, swarm: A, name: "First" });
    await first.next("welcome");
    await open("fourth");
  }, { limits: { maxPendingSockets: 2 } });
});

Deno.test("HTTP: the page and its files, security headers, and no other route or method", async () => {
  await withServer(async ({ http }) => {
    const get = async (path: string, init?: RequestInit) => {
      const r = await fetch(`${http}${path.slice(1)}`, init);
      return { status: r.status, headers: r.headers, body: await r.text() };
    };
    const page = await get("/");
    assertEquals(page.status, 200);
    assertEquals(page.body, ASSETS.html);
    assertTrue(page.headers.get("content-type")!.startsWith("text/html"));
    assertTrue(/default-src 'self'/.test(page.headers.get("content-security-policy") ?? ""));
    assertEquals(page.headers.get("x-frame-options"), "DENY");
    assertEquals(page.headers.get("x-content-type-options"), "nosniff");
    assertEquals(page.headers.get("referrer-policy"), "no-referrer");
    for (
      const [path, body, type] of [
        ["/swarm.js", ASSETS.js, "text/javascript"],
        ["/decode_worker.js", ASSETS.worker, "text/javascript"],
        ["/app.css", ASSETS.css, "text/css"],
      ]
    ) {
      const r = await get(path);
      assertEquals([r.status, r.body], [200, body], path);
      assertTrue(r.headers.get("content-type")!.startsWith(type), path);
      assertEquals(r.headers.get("x-content-type-options"), "nosniff");
    }
    const m = await get("/metrics");
    assertEquals(m.status, 200);
    assertTrue(m.headers.get("content-type")!.startsWith("application/json"));
    assertEquals((await get("/swarm")).status, 426); // a GET that is not an upgrade
    for (const path of ["/", "/swarm", "/upload", "/metrics", "/swarm.js", "/tracks/x"]) {
      for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
        const r = await get(path, { method, body: method === "DELETE" ? undefined : "AAAA" });
        assertTrue(r.status === 404 || r.status === 405, `${method} ${path}: ${r.status}`);
      }
    }
    for (const path of ["/upload", "/peer.js", "/ws", "/tracks/x", "/covers/x", "/index.html"]) {
      assertEquals((await get(path)).status, 404, path);
    }
  });
  // Without a page (it could not be built), the page's routes say so and the rest still works.
  await withServer(async ({ http, join }) => {
    const r = await fetch(http);
    assertEquals(r.status, 503);
    await r.body?.cancel();
    assertEquals((await join(A, "Native"))[1].you, 1);
  }, { assets: undefined });
});

Deno.test("HTTPS and WSS with a certificate the test makes; ICE servers reach the members", async () => {
  const cert = await makeTestCert();
  const client = Deno.createHttpClient({ caCerts: [cert.ca] });
  const ice = [{ urls: "stun:stun.example.org:3478" }, {
    urls: "turn:turn.example.org:3478",
    username: "u",
    credential: "p",
  }];
  try {
    const server = await startSwarmServer({
      port: 0,
      hostname: "127.0.0.1",
      tls: { cert: cert.cert, key: cert.key },
      assets: () => Promise.resolve(ASSETS),
      iceServers: ice,
    });
    try {
      assertTrue(server.tls && server.url.startsWith("https://127.0.0.1:"));
      for (const host of ["localhost", "127.0.0.1"]) {
        const page = await fetch(`https://${host}:${server.port}/`, { client });
        assertEquals([page.status, await page.text()], [200, ASSETS.html]);
      }
      const m = await fetch(`https://localhost:${server.port}/metrics`, { client });
      assertEquals((await m.json()).swarms, 0);
      // Without the test CA the certificate is not trusted: it is real TLS.
      let untrusted = false;
      await fetch(`https://localhost:${server.port}/metrics`).then(
        (r) => r.body?.cancel(),
        () => untrusted = true,
      );
      assertTrue(untrusted, "a client without the CA accepted the certificate");
      const c = await Client.open(`wss://localhost:${server.port}/swarm`, "wss", client);
      try {
        c.send({ type: "join", protocol: 1, swarm: A, name: "Secure" });
        assertEquals(await c.next("welcome"), {
          type: "welcome",
          you: 1,
          members: [],
          iceServers: ice,
        });
      } finally {
        await c.close();
      }
    } finally {
      await within(server.close(), 5000, "server close");
    }
  } finally {
    client.close();
    await cert.remove();
  }
});

Deno.test("--ice-server: stun, turn and turns, TURN credentials; other forms are refused", () => {
  assertEquals(parseIceServer("stun:stun.l.google.com:19302"), {
    urls: "stun:stun.l.google.com:19302",
  });
  assertEquals(parseIceServer("turn:alice:s3cr:et@turn.example.org:3478"), {
    urls: "turn:turn.example.org:3478",
    username: "alice",
    credential: "s3cr:et",
  });
  assertEquals(parseIceServer("turns:a%40b:pw@[2001:db8::1]:5349?transport=tcp"), {
    urls: "turns:[2001:db8::1]:5349?transport=tcp",
    username: "a@b",
    credential: "pw",
  });
  for (
    const [bad, re] of [
      ["http://stun.example.org", /give stun:HOST:PORT/],
      ["stuns:x:1", /give stun:HOST:PORT/],
      ["stun:u:p@x:1", /STUN server takes no user name/],
      ["turn:x:3478", /need a user name and password for TURN/],
      ["turn:justuser@x:3478", /USER:PASSWORD@HOST:PORT/],
      ["stun:x:99999", /port 99999/],
      ["stun:x/y", /HOST or HOST:PORT/],
      ["stun:", /HOST or HOST:PORT/],
    ] as [string, RegExp][]
  ) {
    let message = "";
    try {
      parseIceServer(bad);
    } catch (e) {
      message = (e as Error).message;
    }
    assertTrue(re.test(message), `${bad}: ${message}`);
  }
  assertEquals(iceServersOf({}), []);
  assertEquals(servePortOf({}), 7430);
  assertEquals(servePortOf({ port: 0 }), 0);
});

Deno.test("parseFlags: a list flag collects every occurrence; other flags keep the last", () => {
  const spec = { "ice-server": "list", port: "number", bind: "string" } as const;
  const { flags, positional } = parseFlags(
    ["--ice-server", "stun:a:1", "x", "--ice-server=turn:u:p@b:2", "--bind", "1", "--bind=2"],
    spec,
  );
  assertEquals(flags, { "ice-server": ["stun:a:1", "turn:u:p@b:2"], bind: "2" });
  assertEquals(positional, ["x"]);
  let message = "";
  try {
    parseFlags(["--ice-server"], spec);
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(message, "--ice-server needs a value.");
});

/** Runs main in this process, capturing what it prints. */
async function runMain(args: string[]) {
  const err: string[] = [], out: string[] = [];
  const { error, log } = console;
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  try {
    return { code: await main(args), err: err.join("\n"), out: out.join("\n") };
  } finally {
    console.error = error;
    console.log = log;
  }
}

Deno.test("serve: usage errors and an unreadable certificate are one sentence each", async () => {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-serve-" });
  try {
    const log = ["--log-file", `${dir}/log`];
    const noHeadless = await runMain(["serve", ...log]);
    assertEquals(noHeadless.code, EXIT.usage);
    assertTrue(/add --headless/.test(noHeadless.err), noHeadless.err);
    const half = await runMain(["serve", "--headless", "--tls-cert", `${dir}/c.pem`, ...log]);
    assertEquals(half.code, EXIT.usage);
    assertEquals(
      half.err,
      "phaselock: --tls-cert and --tls-key go together: give the certificate chain and its " +
        "private key (PEM files).",
    );
    const ice = await runMain(["serve", "--headless", "--ice-server", "ftp://x", ...log]);
    assertEquals(ice.code, EXIT.usage);
    assertTrue(/--ice-server "ftp:\/\/x"/.test(ice.err), ice.err);
    const port = await runMain(["serve", "--headless", "--port", "70000", ...log]);
    assertEquals(port.code, EXIT.usage);
    const missing = await runMain([
      "serve",
      "--headless",
      "--tls-cert",
      `${dir}/none.pem`,
      "--tls-key",
      `${dir}/none.key`,
      ...log,
    ]);
    assertEquals(missing.code, EXIT.failure);
    const event = JSON.parse(missing.out);
    assertEquals(event.type, "error");
    assertTrue(
      /^Cannot read the TLS certificate ".*none\.pem": /.test(event.message),
      event.message,
    );
    const help = await runMain(["serve", "--help"]);
    assertEquals(help.code, EXIT.ok);
    assertTrue(/--ice-server URL/.test(help.out) && /--tls-cert FILE/.test(help.out));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `phaselock serve --headless …` as a process: its stdout lines, stderr, stdin and exit. */
function spawnServe(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("main.ts", ROOT).pathname, "serve", "--headless", ...args],
    cwd: new URL(".", ROOT).pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  const pumped = Promise.all([
    forEachLine(child.stdout, (l) => lines.push(JSON.parse(l))),
    forEachLine(child.stderr, (l) => stderr += l + "\n"),
  ]);
  const stdin = child.stdin.getWriter();
  const waitFor = (type: string, ms = 30_000) =>
    within(
      (async () => {
        while (true) {
          const hit = lines.find((l) => l.type === type);
          if (hit) return hit;
          await sleep(25);
        }
      })(),
      ms,
      `"${type}" from phaselock serve (stderr: ${stderr.slice(-800)})`,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; stderr so far: ${stderr.slice(-800)}`);
    });
  const end = async () => {
    await stdin.close().catch(() => {});
    const status = await within(child.status, 10_000, "phaselock serve exiting").catch((e) => {
      child.kill("SIGKILL");
      throw e;
    });
    await pumped;
    return status;
  };
  return { child, lines, stdin, waitFor, end, stderr: () => stderr };
}

Deno.test("phaselock serve --headless: serves, answers status, stops on SIGTERM and on quit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-serve-" });
  const cert = await makeTestCert();
  const client = Deno.createHttpClient({ caCerts: [cert.ca] });
  try {
    // HTTPS, killed by SIGTERM.
    const tls = spawnServe([
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
      "--tls-cert",
      cert.certFile,
      "--tls-key",
      cert.keyFile,
      "--ice-server",
      "stun:stun.example.org:3478",
      "--log-file",
      `${dir}/tls.log`,
    ]);
    try {
      const serving = await tls.waitFor("serving");
      const port = serving.port as number;
      assertEquals(serving, {
        type: "serving",
        url: `https://127.0.0.1:${port}/`,
        port,
        tls: true,
      });
      const r = await fetch(`https://localhost:${port}/metrics`, { client });
      assertEquals((await r.json()).members, 0);
      assertTrue(!/plain HTTP/.test(tls.stderr()), tls.stderr());
    } finally {
      tls.child.kill("SIGTERM");
      const status = await tls.end();
      assertEquals(status.code, 0, tls.stderr());
    }
    assertTrue(tls.lines.some((l) => l.type === "quit"));

    // Plain HTTP, stopped by `quit` on stdin; says what plain HTTP means.
    const plain = spawnServe(["--port", "0", "--bind", "127.0.0.1", "--log-file", `${dir}/p.log`]);
    try {
      const serving = await plain.waitFor("serving");
      assertEquals(serving.tls, false);
      assertEquals(serving.url, `http://127.0.0.1:${serving.port}/`);
      assertTrue(
        /plain HTTP: fine on a LAN or behind a TLS-terminating proxy/.test(plain.stderr()),
        plain.stderr(),
      );
      await plain.stdin.write(new TextEncoder().encode("status\n"));
      const s = await plain.waitFor("status");
      assertEquals(s.swarms, 0);
      await plain.stdin.write(new TextEncoder().encode("quit\n"));
      await plain.waitFor("quit", 10_000);
    } finally {
      try {
        plain.child.kill("SIGTERM"); // still running only if quit failed above
      } catch { /* exited */ }
      const status = await plain.end();
      assertEquals(status.code, 0, plain.stderr());
    }
    const log = await Deno.readTextFile(`${dir}/p.log`);
    assertTrue(/"type":"serving"/.test(log));
  } finally {
    client.close();
    await cert.remove();
    await Deno.remove(dir, { recursive: true });
  }
});
