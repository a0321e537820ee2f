import { assertEquals, assertThrows, assertTrue } from "../tests/assert.ts";
import { makeLocalClock } from "../net/local_clock.ts";
import type { EngineEvent } from "./commands.ts";
import { HostEngine, type HostOptions, joinUrlFor } from "./host.ts";
import { PROTOCOL_VERSION } from "./protocol.ts";
import { freePort } from "../tests/harness/ports.ts";

// The engine runs real servers and an audio thread; stop() ends them, a beat later.
const opts = { sanitizeOps: false, sanitizeResources: false };

function engine(o: Partial<HostOptions> & { port: number }, dir: string) {
  const events: EngineEvent[] = [];
  const host = new HostEngine(
    {
      session: "Cap Test",
      name: "Alex",
      hostname: "127.0.0.1",
      audio: "null",
      advertise: false,
      requestDir: `${dir}/requests`,
      ...o,
    },
    makeLocalClock(),
    (e) => events.push(e),
  );
  return { host, events };
}

/** Opens a control socket, says hello and resolves with the host's first answer. */
function join(port: number, name: string): Promise<{ type: string; reason?: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  return new Promise((resolve, reject) => {
    ws.onopen = () =>
      ws.send(JSON.stringify({
        type: "hello",
        protocolVersion: PROTOCOL_VERSION,
        name,
        client: "browser",
        audio: { backend: "webaudio", device: true },
      }));
    ws.onmessage = (m) => resolve(JSON.parse(m.data));
    ws.onerror = () => reject(new Error(`${name} could not connect`));
  });
}

Deno.test("the join URL is http://HOST:PORT/, with an IPv6 host in brackets", () => {
  assertEquals(joinUrlFor("192.168.1.20", 7420), "http://192.168.1.20:7420/");
  assertEquals(joinUrlFor("fd00::20", 7420), "http://[fd00::20]:7420/");
  assertEquals(joinUrlFor("fe80::1%eth0", 7420), "http://[fe80::1%25eth0]:7420/");
});

Deno.test("maxPeers outside 1..20 is refused before anything starts", () => {
  for (const bad of [0, 21, 1.5]) {
    assertThrows(
      () => engine({ port: 1, maxPeers: bad }, "/nonexistent"),
      /maxPeers must be a whole number from 1 to 20/,
    );
  }
});

Deno.test(
  "--max-peers reaches the peer set: the jam admits that many and refuses the next",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "phaselock-host-" });
    const port = freePort();
    const { host, events } = engine({ port, maxPeers: 2 }, dir);
    try {
      await host.start();
      const session = events.find((e) => e.type === "session") as Extract<
        EngineEvent,
        { type: "session" }
      >;
      assertEquals(session.joinUrl, `http://127.0.0.1:${port}/`);
      assertEquals(host.joinUrl, session.joinUrl);
      assertEquals(session.maxPeers, 2);
      assertEquals(session.joinQr, undefined, "the QR is the app's, not in headless output");
      assertEquals((await join(port, "Sam")).type, "welcome");
      assertEquals((await join(port, "Kim")).type, "welcome");
      const third = await join(port, "Lee");
      assertEquals(third.type, "refused");
      assertEquals(third.reason, '"Cap Test" is full: it already has 2 of 2 peers.');
      const peers = events.findLast((e) => e.type === "peers") as { peers: { client: string }[] };
      assertTrue(peers.peers.every((p) => p.client === "browser"), "listed as browsers");
    } finally {
      await host.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("without maxPeers a jam admits five", opts, async () => {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-host-" });
  const port = freePort();
  const { host, events } = engine({ port }, dir);
  try {
    await host.start();
    assertEquals((events.find((e) => e.type === "session") as { maxPeers: number }).maxPeers, 5);
    for (let i = 0; i < 5; i++) assertEquals((await join(port, `P${i}`)).type, "welcome");
    assertEquals((await join(port, "P5")).type, "refused");
  } finally {
    await host.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "the page browsers join from is served at / on the jam's port when the host has one",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "phaselock-host-" });
    const port = freePort();
    const page = { html: "<p>Join Cap Test</p>", css: "p{}", js: "1", worker: "2" };
    const { host } = engine({ port, peerPage: () => Promise.resolve(page) }, dir);
    try {
      await host.start();
      const res = await fetch(host.joinUrl);
      assertEquals(await res.text(), page.html);
      assertEquals(await (await fetch(`${host.joinUrl}peer.js`)).text(), "1");
    } finally {
      await host.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** A raw peer socket: says hello, collects every message from the host. */
function rawPeer(port: number, name: string) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  const inbox: { type: string; on?: boolean }[] = [];
  ws.onopen = () =>
    ws.send(JSON.stringify({
      type: "hello",
      protocolVersion: PROTOCOL_VERSION,
      name,
      client: "native",
      audio: { backend: "null", device: false },
    }));
  ws.onmessage = (m) => inbox.push(JSON.parse(m.data));
  return { ws, inbox };
}

async function until<T>(what: string, f: () => T | undefined, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (let v = f(); Date.now() < end; v = f()) {
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test(
  "the click test is the jam's: host or peer turns it on, everyone is told, late joiners " +
    "too, and it stops by itself",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "phaselock-host-" });
    const port = freePort();
    const { host, events } = engine({ port, clickTestMs: 600 }, dir);
    const socks: WebSocket[] = [];
    const clicks = (inbox: { type: string; on?: boolean }[]) =>
      inbox.filter((m) => m.type === "clicks").map((m) => m.on);
    const hostSaid = () => events.filter((e) => e.type === "clicks").map((e) => e.on);
    try {
      await host.start();
      const sam = rawPeer(port, "Sam");
      socks.push(sam.ws);
      // The greeting says where it stands, off too.
      await until("Sam's greeting", () => clicks(sam.inbox).length === 1 || undefined);
      assertEquals(clicks(sam.inbox), [false]);
      await host.run({ cmd: "clicks", on: true });
      await until("on at Sam", () => clicks(sam.inbox).length === 2 || undefined);
      assertEquals(clicks(sam.inbox), [false, true]);
      assertEquals(hostSaid(), [true]);
      // A late joiner ticks at once.
      const kim = rawPeer(port, "Kim");
      socks.push(kim.ws);
      await until("Kim's greeting", () => clicks(kim.inbox).length === 1 || undefined);
      assertEquals(clicks(kim.inbox), [true]);
      // A peer turns it off for everyone; the host says who.
      kim.ws.send(JSON.stringify({ type: "clicks", on: false }));
      await until("off at Sam", () => clicks(sam.inbox).length === 3 || undefined);
      assertEquals(clicks(sam.inbox), [false, true, false]);
      assertEquals(hostSaid(), [true, false]);
      assertTrue(
        events.some((e) => e.type === "notice" && e.message === "Kim stopped the click test."),
        "the host is told who stopped it",
      );
      // On again (from a peer): off by itself after clickTestMs, with a sentence.
      sam.ws.send(JSON.stringify({ type: "clicks", on: true }));
      await until("on again", () => hostSaid().length === 3 || undefined);
      const onAt = Date.now();
      await until("auto-off", () => hostSaid().length === 4 || undefined);
      assertTrue(Date.now() - onAt >= 500, `stopped after ${Date.now() - onAt} ms`);
      assertEquals(hostSaid(), [true, false, true, false]);
      await until("off at Kim", () => clicks(kim.inbox).at(-1) === false || undefined);
      assertTrue(
        events.some((e) =>
          e.type === "notice" && /click test stopped by itself after 1 s/.test(e.message)
        ),
        "the auto-off is said",
      );
    } finally {
      for (const ws of socks) ws.close();
      await host.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
