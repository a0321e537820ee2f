/**
 * The jam server's WebSocket admission on real loopback sockets: the Hono app under
 * `Deno.serve`, with the host's real admission ({@link PeerSet}) behind it.
 */
import { assertEquals, assertTrue } from "../tests/assert.ts";
import { PeerSet } from "../session/peers.ts";
import { PROTOCOL_VERSION } from "../session/protocol.ts";
import { createApp, HELLO_TIMEOUT_MS, MAX_UNADMITTED_SOCKETS } from "./http.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** `p`, or a failure naming `what` after `ms`: a broken server must fail the test, not hang it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms)
  );
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function serve() {
  const peers = new PeerSet({ session: "Jam", hostName: "Alex" }, { now: () => Date.now() }, {
    emit: () => {},
    greeting: () => [],
    focus: () => ({}),
    message: () => {},
    left: () => {},
  });
  const app = createApp({
    trackPath: () => undefined,
    cover: () => undefined,
    upload: () => Promise.resolve({ status: 404, text: "No." }),
    onSocket: (ws) => peers.connect(ws),
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  /** Every client socket the test opened, closed before the server shuts down. */
  const clients: WebSocket[] = [];
  const close = async () => {
    for (const ws of clients) ws.close();
    await within(server.shutdown(), 5000, "server shutdown");
  };
  return { port: server.addr.port, clients, close };
}

/** A WebSocket that has opened; `closed` resolves with its close code, reason and time. */
async function idleSocket(port: number, clients: WebSocket[]) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  clients.push(ws);
  const closed = new Promise<{ code: number; reason: string; atMs: number }>((r) =>
    ws.onclose = (e) => r({ code: e.code, reason: e.reason, atMs: performance.now() })
  );
  await within(
    new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("could not connect"));
    }),
    3000,
    "WebSocket open",
  );
  return { ws, closed };
}

function sayHello(ws: WebSocket, name: string): Promise<Record<string, unknown>> {
  const first = new Promise<Record<string, unknown>>((r) =>
    ws.onmessage = (e) => r(JSON.parse(e.data))
  );
  ws.send(JSON.stringify({
    type: "hello",
    protocolVersion: PROTOCOL_VERSION,
    name,
    client: "native",
    audio: { backend: "null", device: false },
  }));
  return within(first, 3000, "answer to hello");
}

/** Sends a WebSocket upgrade by hand and reads the status and body of the answer. */
function rawUpgrade(port: number): Promise<{ status: number; body: string }> {
  return within(rawUpgradeOnce(port), 3000, "answer to an upgrade");
}
async function rawUpgradeOnce(port: number): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\n\r\n",
    ));
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const head = text.indexOf("\r\n\r\n");
      if (head >= 0) {
        const status = Number(text.split(" ")[1]);
        const length = Number(/content-length: *(\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
        const body = text.slice(head + 4);
        if (status === 101 || body.length >= length) return { status, body };
      }
      const n = await conn.read(buf);
      if (n === null) throw new Error(`connection closed after: ${text}`);
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "connections that never say hello are closed after 5 s with 1008; a peer stays",
  ...opts,
  async fn() {
    const { port, clients, close } = serve();
    try {
      const startMs = performance.now();
      const idle = await Promise.all(
        Array.from({ length: MAX_UNADMITTED_SOCKETS - 1 }, () => idleSocket(port, clients)),
      );
      const peer = await idleSocket(port, clients);
      assertEquals((await sayHello(peer.ws, "Sam")).type, "welcome");
      const closes = await within(
        Promise.all(idle.map((s) => s.closed)),
        HELLO_TIMEOUT_MS + 2000,
        "idle sockets closed",
      );
      for (const c of closes) {
        assertEquals([c.code, c.reason], [1008, "hello timeout"]);
        const afterMs = c.atMs - startMs;
        assertTrue(
          afterMs >= HELLO_TIMEOUT_MS - 100 && afterMs < HELLO_TIMEOUT_MS + 1000,
          `closed after ${afterMs.toFixed(0)} ms`,
        );
      }
      // The admitted peer outlives the deadline and is still served.
      await new Promise((r) => setTimeout(r, 500));
      assertEquals(peer.ws.readyState, WebSocket.OPEN);
      const answer = new Promise((r) => peer.ws.onmessage = (e) => r(JSON.parse(e.data)));
      peer.ws.send(JSON.stringify({ type: "hello" }));
      assertEquals((await within(answer, 3000, "notice") as { type: string }).type, "notice");
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "past 32 connections waiting for hello an upgrade gets 503; admission frees a place",
  ...opts,
  async fn() {
    const { port, clients, close } = serve();
    try {
      for (let i = 0; i < MAX_UNADMITTED_SOCKETS; i++) await idleSocket(port, clients);
      const refused = await rawUpgrade(port);
      assertEquals(refused.status, 503);
      assertEquals(
        refused.body,
        "Too many connections are waiting to join (32); try again in a few seconds.\n",
      );
      // A browser's WebSocket sees the refusal as a failed connection.
      await within(
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
          clients.push(ws);
          ws.onerror = () => resolve();
          ws.onopen = () => {
            ws.close();
            reject(new Error("a 33rd waiting connection was accepted"));
          };
        }),
        3000,
        "refused WebSocket",
      );
      // An admitted peer no longer waits: its place goes to the next connection.
      assertEquals((await sayHello(clients[0], "Sam")).type, "welcome");
      assertEquals((await rawUpgrade(port)).status, 101);
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "a plain GET of /ws is answered with a sentence, not a socket",
  ...opts,
  async fn() {
    const { port, close } = serve();
    try {
      const r = await fetch(`http://127.0.0.1:${port}/ws`);
      assertEquals(r.status, 426);
      assertTrue(/connect with a WebSocket/.test(await r.text()));
    } finally {
      await close();
    }
  },
});
