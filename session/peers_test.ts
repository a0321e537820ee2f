import { assertEquals, assertTrue } from "../tests/assert.ts";
import type { SocketHandler } from "../server/http.ts";
import type { EngineEvent } from "./commands.ts";
import { type Peer, PeerSet, type PeerTrackMessage, UNKNOWN_RTT_MS } from "./peers.ts";
import {
  decodeMessage,
  encodeMessage,
  type HostToPeer,
  MAX_PEERS,
  PROTOCOL_VERSION,
} from "./protocol.ts";

const T0 = 1.7e12;

/** A socket that records what the host sends and how it closes it. */
class FakeSocket {
  sent: HostToPeer[] = [];
  closed: { code?: number; reason?: string } | null = null;
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
  }
  ofType<K extends HostToPeer["type"]>(type: K) {
    return this.sent.filter((m): m is Extract<HostToPeer, { type: K }> => m.type === type);
  }
}

const hello = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "hello",
    protocolVersion: PROTOCOL_VERSION,
    name,
    client: "native",
    audio: { backend: "null", device: true },
    ...extra,
  });

const clockReport = (o: { rttMs: number; errorMs?: number; locked?: boolean }) =>
  JSON.stringify({
    type: "clock",
    locked: o.locked ?? true,
    offsetMs: 3.2,
    driftPpm: 80,
    rttMs: o.rttMs,
    errorMs: o.errorMs ?? 0.1,
  });

function setup(opts: { maxPeers?: number } = {}) {
  let nowMs = T0;
  const events: EngineEvent[] = [];
  const routed: [string, PeerTrackMessage][] = [];
  const left: string[] = [];
  const timers: { ms: number; fn: () => void }[] = [];
  let countChanges = 0;
  const focus: { current?: string; next?: string } = {};
  const peers = new PeerSet({ session: "Test Jam", hostName: "Alex", ...opts }, {
    now: () => nowMs,
  }, {
    emit: (e) => events.push(e),
    greeting: () => [{ type: "queue", tracks: [], current: -1 }],
    focus: () => focus,
    message: (p, m) => routed.push([p.name, m]),
    left: (p) => left.push(p.name),
    countChanged: () => countChanges++,
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
  });
  /** Connects a fake socket and says hello with `name`. */
  const join = (name: string, extra: Record<string, unknown> = {}) => {
    const ws = new FakeSocket();
    const h: SocketHandler = peers.connect(ws);
    h.onMessage(hello(name, extra));
    return { ws, h, peer: [...peers.values()].find((p) => p.ws === ws) as Peer };
  };
  return {
    peers,
    events,
    routed,
    left,
    timers,
    focus,
    join,
    countChanges: () => countChanges,
    advance: (ms: number) => nowMs += ms,
  };
}

Deno.test("a valid hello is welcomed, gets the queue, is announced and listed", () => {
  const t = setup();
  const { ws, h, peer } = t.join("  Sam ");
  assertTrue(h.admitted());
  assertEquals(ws.sent[0], {
    type: "welcome",
    protocolVersion: PROTOCOL_VERSION,
    peerId: 1,
    name: "Sam",
    session: "Test Jam",
    hostName: "Alex",
  });
  assertEquals(ws.sent[1], { type: "queue", tracks: [], current: -1 });
  assertEquals(ws.ofType("peers").at(-1)!.peers.map((p) => p.name), ["Sam"]);
  assertTrue(t.events.some((e) => e.type === "peer-joined" && e.name === "Sam"));
  assertEquals([peer.color, t.peers.size, t.countChanges()], ["red", 1, 1]);
});

Deno.test("names are cleaned and made unique against the host and the other peers", () => {
  const t = setup();
  assertEquals(t.join("Alex").peer.name, "Alex (2)");
  assertEquals(t.join("alex").peer.name, "alex (3)");
  assertEquals(t.join("Kim").peer.name, "Kim");
});

Deno.test("a wrong version, a full jam or an invisible name is refused with a sentence", () => {
  const t = setup();
  const refusal = (ws: FakeSocket) => {
    assertEquals(ws.closed, { code: 1000, reason: "refused" });
    return ws.ofType("refused")[0].reason;
  };
  const old = t.join("Sam", { protocolVersion: PROTOCOL_VERSION + 1 });
  assertEquals(old.h.admitted(), false);
  assertTrue(
    new RegExp(
      `protocol version ${PROTOCOL_VERSION}; your PhaseLock speaks ${
        PROTOCOL_VERSION + 1
      }\\. Update`,
    )
      .test(refusal(old.ws)),
  );
  assertTrue(/at least one visible character/.test(refusal(t.join(" \u0007\t ").ws)));
  for (let i = 0; i < MAX_PEERS; i++) t.join(`P${i}`);
  const sixth = t.join("Lee");
  assertEquals(refusal(sixth.ws), `"Test Jam" is full: it already has 5 of 5 peers.`);
  assertEquals(t.events.filter((e) => e.type === "peer-refused").length, 3);
});

Deno.test("a first message that is not a valid hello closes the connection with 1008", () => {
  const t = setup();
  const ws1 = new FakeSocket();
  const h1 = t.peers.connect(ws1);
  h1.onMessage(JSON.stringify({ type: "bye" }));
  assertEquals([ws1.closed, h1.admitted()], [{ code: 1008, reason: "expected hello" }, false]);
  const ws2 = new FakeSocket();
  t.peers.connect(ws2).onMessage("{not json");
  assertEquals(ws2.closed, { code: 1008, reason: "protocol error" });
  assertEquals(ws2.sent[0], {
    type: "notice",
    level: "error",
    text: "Message rejected: message is not valid JSON.",
  });
  assertEquals(t.peers.size, 0);
});

Deno.test("a joined peer's bad message is answered with a notice and it stays", () => {
  const t = setup();
  const { ws, h } = t.join("Sam");
  h.onMessage(JSON.stringify({ type: "clock", locked: "yes" }));
  assertEquals(ws.closed, null);
  assertTrue(h.admitted());
  assertTrue(
    t.events.some((e) => e.type === "notice" && /from Sam: clock\.locked/.test(e.message)),
  );
  h.onMessage(hello("Sam"));
  assertEquals(ws.sent.at(-1), { type: "notice", level: "warn", text: "Already joined." });
});

Deno.test("trackState and request go to the host; settings update the list", () => {
  const t = setup();
  const { h, peer } = t.join("Sam");
  const state = {
    type: "trackState",
    trackId: "a".repeat(64),
    state: "downloading",
    progress: 0.5,
  } as const;
  h.onMessage(JSON.stringify(state));
  assertEquals(t.routed, [["Sam", state]]);
  h.onMessage(JSON.stringify({ type: "settings", channel: "left", speakerDelayMs: 40 }));
  assertEquals(peer.settings, { channel: "left", speakerDelayMs: 40 });
  const list = t.events.findLast((e) => e.type === "peers")!.peers as { channel: string }[];
  assertEquals(list[0].channel, "left");
});

Deno.test("a peer that leaves is removed, announced, and the host is told", () => {
  const t = setup();
  const sam = t.join("Sam");
  const kim = t.join("Kim");
  sam.h.onClose();
  assertEquals(t.peers.size, 1);
  assertEquals(t.left, ["Sam"]);
  assertTrue(t.events.some((e) => e.type === "peer-left" && e.name === "Sam"));
  assertEquals(kim.ws.ofType("peers").at(-1)!.peers.map((p) => p.name), ["Kim"]);
  assertEquals(t.countChanges(), 3);
  // Its name is free again.
  assertEquals(t.join("Sam").peer.name, "Sam");
  // A refused connection closing is no peer leaving.
  t.peers.connect(new FakeSocket()).onClose();
  assertEquals(t.left, ["Sam"]);
});

Deno.test("clock reports turn a peer green; 3 s without one turns it red", () => {
  const t = setup();
  const { h, peer } = t.join("Sam");
  h.onMessage(clockReport({ rttMs: 2, errorMs: 0.1 }));
  assertEquals(peer.color, "green");
  const list = t.events.findLast((e) => e.type === "peers")!.peers as { clock: string }[];
  assertEquals(list[0].clock, "green");
  h.onMessage(clockReport({ rttMs: 45, errorMs: 0.3 }));
  assertEquals(peer.color, "yellow", "a WAN round trip");
  t.advance(3001);
  t.peers.recolorAll();
  assertEquals(peer.color, "red");
});

Deno.test("the peer list shows the current and next track's state and progress, and errorMs", () => {
  const t = setup();
  const { h } = t.join("Sam");
  assertEquals(t.peers.list()[0], {
    id: 1,
    name: "Sam",
    clock: "red",
    offsetMs: 0,
    rttMs: 0,
    audio: { backend: "null", device: true },
    track: "none",
    channel: "stereo",
    speakerDelayMs: 0,
    progress: 0,
    next: "none",
    nextProgress: 0,
    client: "native",
  });
  const [a, b] = ["a".repeat(64), "b".repeat(64)];
  t.focus.current = a;
  t.focus.next = b;
  h.onMessage(clockReport({ rttMs: 3, errorMs: 0.25 }));
  const [peer] = t.peers.values();
  peer.tracks.set(a, { state: "ready", progress: 1 });
  peer.tracks.set(b, { state: "downloading", progress: 0.4 });
  const info = t.peers.list()[0];
  assertEquals(
    [info.track, info.progress, info.next, info.nextProgress, info.errorMs, info.rttMs],
    ["ready", 1, "downloading", 0.4, 0.25, 3],
  );
  // Peers validate every field of what the host sends: the new ones must pass too.
  const msg: HostToPeer = { type: "peers", peers: t.peers.list() };
  assertEquals(decodeMessage(encodeMessage(msg), "host"), msg);
});

Deno.test("dispatch() sends to the farthest peer first, the others later by half the RTT gap", () => {
  const t = setup();
  const near = t.join("Near"), far = t.join("Far"), quiet = t.join("Quiet");
  near.h.onMessage(clockReport({ rttMs: 10 }));
  far.h.onMessage(clockReport({ rttMs: 40 }));
  const before = [near, far, quiet].map((x) => x.ws.sent.length);
  t.peers.dispatch({ type: "pause", atHostMs: T0 + 500 });
  assertEquals(far.ws.sent.length, before[1] + 1, "the farthest gets it at once");
  assertEquals(near.ws.sent.length, before[0]);
  // Half of 40 − half of 10 = 15 ms; an unmeasured peer counts as 0 ms away: 20 ms.
  assertEquals(t.timers.map((x) => x.ms), [15, 20]);
  for (const x of t.timers) x.fn();
  assertEquals(near.ws.sent.at(-1), { type: "pause", atHostMs: T0 + 500 });
  assertEquals(quiet.ws.sent.at(-1), { type: "pause", atHostMs: T0 + 500 });
});

Deno.test("slowestRttMs() counts a peer with no clock report as 50 ms away", () => {
  const t = setup();
  assertEquals(t.peers.slowestRttMs(), 0);
  const { h } = t.join("Sam");
  assertEquals(t.peers.slowestRttMs(), UNKNOWN_RTT_MS);
  h.onMessage(clockReport({ rttMs: 4 }));
  assertEquals(t.peers.slowestRttMs(), 4);
  // A browser that renders 250 ms ahead needs its schedules that much earlier.
  h.onMessage(JSON.stringify({ ...JSON.parse(clockReport({ rttMs: 4 })), bufferMs: 250 }));
  assertEquals(t.peers.slowestRttMs(), 254);
});

Deno.test("a ping is answered with the host's receive and send times; the list says browser", () => {
  const t = setup();
  const { ws, h } = t.join("Phone", { client: "browser" });
  h.onMessage(JSON.stringify({ type: "ping", t1: 1234.5 }));
  assertEquals(ws.ofType("pong").at(-1), { type: "pong", t1: 1234.5, t2: T0, t3: T0 });
  assertEquals(ws.ofType("peers").at(-1)!.peers[0].client, "browser");
  // Before hello a ping is not a hello: the connection is closed like any other.
  const stranger = new FakeSocket();
  t.peers.connect(stranger).onMessage(JSON.stringify({ type: "ping", t1: 1 }));
  assertEquals(stranger.closed, { code: 1008, reason: "expected hello" });
});

Deno.test("--max-peers raises the cap: the 21st of 20 is refused with the same sentence", () => {
  const t = setup({ maxPeers: 20 });
  for (let i = 0; i < 20; i++) assertTrue(t.join(`P${i}`).h.admitted());
  const last = t.join("Lee");
  assertEquals(last.h.admitted(), false);
  assertEquals(
    last.ws.ofType("refused")[0].reason,
    `"Test Jam" is full: it already has 20 of 20 peers.`,
  );
});

Deno.test("named() finds a peer in any case, or says which peers there are", () => {
  const t = setup();
  t.join("Sam");
  assertEquals(t.peers.named("SAM")?.name, "Sam");
  assertEquals(t.peers.named("Kim"), null);
  assertEquals(t.events.at(-1), { type: "error", message: 'No peer named "Kim". Peers: Sam.' });
});

Deno.test("the sync panel gets each reporting peer's clock error and placement error", () => {
  const t = setup();
  const sam = t.join("Sam");
  t.join("Kim"); // no clock report yet: nothing to show for Kim
  sam.h.onMessage(
    JSON.stringify({
      ...JSON.parse(clockReport({ rttMs: 0.4, errorMs: 0.07 })),
      placementMs: -0.2,
    }),
  );
  assertEquals(t.peers.health(), [
    { name: "Sam", host: false, clockErrorMs: 0.07, placementMs: -0.2 },
  ]);
});
