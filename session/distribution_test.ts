import { assertEquals, assertTrue } from "../tests/assert.ts";
import type { Pcm } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";
import { Distribution, type SharedTrack } from "./distribution.ts";
import { PeerSet } from "./peers.ts";
import { type HostToPeer, PROTOCOL_VERSION } from "./protocol.ts";
import { TrackQueue } from "./queue.ts";

const [A, B, C] = ["a", "b", "c"].map((x) => x.repeat(64));
const track = (id: string): SharedTrack => ({
  info: { id, fileName: `${id[0]}.mp3`, title: id[0].toUpperCase() },
});
const pcm = (id: string): Pcm => ({
  id,
  rateHz: 48000,
  left: new Float32Array(1),
  right: new Float32Array(1),
});

/** A distribution over a real queue and peer set, fake sockets, output and file loading. */
function setup(ids = [A, B, C]) {
  const events: EngineEvent[] = [];
  const queue = new TrackQueue((id) => id[0]);
  for (const id of ids) queue.add(id);
  const tracks = new Map(ids.map((id) => [id, track(id)]));
  const output: string[] = [];
  const ready: string[] = [];
  const unreadable: [string, string][] = [];
  /** What `load` does for each track; by default it decodes at once. */
  const loads = new Map<string, Promise<Pcm>>();
  const peers = new PeerSet({ session: "Jam", hostName: "Alex" }, { now: () => 1.7e12 }, {
    emit: (e) => events.push(e),
    greeting: () => [],
    focus: () => ({ current: queue.currentId, next: queue.nextId }),
    message: (p, m) => m.type === "trackState" && dist.trackState(p, m),
    left: () => dist.peerLeft(),
  });
  const dist: Distribution<SharedTrack> = new Distribution({
    hostName: "Alex",
    peers,
    wanted: () => queue.wanted(),
    currentId: () => queue.currentId,
    track: (id) => tracks.get(id),
    output: {
      addTrack: (p) => output.push(`+${p.id[0]}`),
      dropTrack: (id) => output.push(`-${id[0]}`),
    },
    load: (t) => loads.get(t.info.id) ?? Promise.resolve(pcm(t.info.id)),
    emit: (e) => events.push(e),
    readyEverywhere: (id) => ready.push(id[0]),
    unreadable: (id, why) => unreadable.push([id[0], why]),
  });
  /** A peer on a fake socket; `report` sends its trackState, `sent` is what it got. */
  const join = (name: string) => {
    const sent: HostToPeer[] = [];
    const h = peers.connect({ send: (t) => sent.push(JSON.parse(t)), close: () => h.onClose() });
    h.onMessage(JSON.stringify({
      type: "hello",
      protocolVersion: PROTOCOL_VERSION,
      name,
      client: "native",
      audio: { backend: "null", device: true },
    }));
    const report = (trackId: string, state: string, progress = 1, error?: string) =>
      h.onMessage(JSON.stringify({ type: "trackState", trackId, state, progress, error }));
    return { sent, report, close: () => h.onClose() };
  };
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return { dist, queue, events, output, ready, unreadable, loads, join, settle };
}

Deno.test("notReady() names the host while it decodes and each peer with what it is doing", async () => {
  const t = setup();
  const sam = t.join("Sam"), kim = t.join("Kim"), lee = t.join("Lee");
  assertEquals(t.dist.notReady(A), [
    "Alex (host, decoding)",
    "Sam (waiting)",
    "Kim (waiting)",
    "Lee (waiting)",
  ]);
  t.dist.keepDecoded();
  await t.settle();
  sam.report(A, "downloading", 0.426);
  kim.report(A, "failed", 0, "connection reset");
  lee.report(A, "decoding");
  assertEquals(t.dist.notReady(A), [
    "Sam (downloading 43%)",
    "Kim (failed: connection reset)",
    "Lee (decoding)",
  ]);
});

Deno.test("a track ready on every device is announced once the last one has it", async () => {
  const t = setup();
  const sam = t.join("Sam"), kim = t.join("Kim");
  t.dist.keepDecoded();
  await t.settle();
  assertEquals(t.ready, [], "the host alone is not everyone");
  sam.report(A, "ready");
  assertEquals(t.ready, []);
  kim.report(A, "ready");
  assertEquals(t.ready, ["a"]);
  assertTrue(t.events.some((e) => e.type === "track-ready-all" && e.trackId === A));
  assertTrue(t.events.some((e) => e.type === "track-ready" && e.peer === "Kim"));
});

Deno.test("a peer leaving lets the tracks that waited for it go ahead", async () => {
  const t = setup();
  t.join("Sam").report(A, "ready");
  const kim = t.join("Kim");
  t.dist.keepDecoded();
  await t.settle();
  assertEquals(t.ready, [], "Kim has nothing yet");
  kim.close();
  assertEquals(t.ready, ["a"]);
});

Deno.test("a failed transfer tells the host who, what, and the two ways on", () => {
  const t = setup();
  t.join("Sam").report(A, "failed", 0, "connection reset");
  assertTrue(
    t.events.some((e) =>
      e.type === "transfer-failed" && e.peer === "Sam" && e.fileName === "a.mp3" &&
      e.error === "connection reset"
    ),
  );
  assertEquals(
    t.events.findLast((e) => e.type === "error"),
    {
      type: "error",
      message: 'Sam could not get "a.mp3": connection reset. ' +
        "Use retry Sam to try again, or skip-peer Sam to play without them.",
    },
  );
});

Deno.test("retry asks the peer to fetch again; skip-peer plays its missing tracks without it", async () => {
  const t = setup();
  const sam = t.join("Sam");
  t.dist.keepDecoded();
  await t.settle();
  sam.report(A, "failed", 0, "gone");
  t.dist.decide("retry", "sam");
  assertEquals(sam.sent.at(-1), { type: "retry" });
  t.dist.decide("skip-peer", "Sam");
  assertEquals(
    t.events.findLast((e) => e.type === "notice")!.message,
    'Playing "A" and "B" without waiting for Sam; they join in once they have it.',
  );
  assertEquals(t.dist.notReady(A), []);
  assertEquals(t.ready, ["a", "b"]);
  // Once it reports the track ready it counts as any other peer again.
  sam.report(A, "ready");
  sam.report(B, "ready");
  t.dist.decide("skip-peer", "Sam");
  assertEquals(
    t.events.findLast((e) => e.type === "notice")!.message,
    "Sam already has the current and next track; nothing to skip.",
  );
  t.dist.decide("skip-peer", "Nobody");
  assertEquals(t.events.at(-1)!.type, "error");
});

Deno.test("keepDecoded() holds exactly the current and next track in the host's output", async () => {
  const t = setup();
  t.dist.keepDecoded();
  await t.settle();
  assertEquals(t.output, ["+a", "+b"]);
  assertEquals([t.dist.isDecoded(A), t.dist.isDecoded(B), t.dist.isDecoded(C)], [
    true,
    true,
    false,
  ]);
  t.queue.advance();
  t.dist.keepDecoded();
  await t.settle();
  assertEquals(t.output, ["+a", "+b", "-a", "+c"]);
  assertEquals(t.ready, ["a", "b", "c"], "with no peers the host alone decides");
});

Deno.test("a track that stops being wanted while decoding is not kept", async () => {
  const t = setup();
  let finish!: (p: Pcm) => void;
  t.loads.set(B, new Promise((r) => finish = r));
  t.dist.keepDecoded();
  t.queue.move(2, 3); // c is next now; b's decode is still under way
  t.dist.keepDecoded();
  await t.settle();
  finish(pcm(B));
  await t.settle();
  assertEquals(t.output.sort(), ["+a", "+c"]);
  assertEquals(t.dist.isDecoded(B), false);
});

Deno.test("a file that can no longer be read is handed back as unreadable with the reason", async () => {
  const t = setup();
  t.loads.set(B, Promise.reject(new Error("the file is gone")));
  t.dist.keepDecoded();
  await t.settle();
  assertEquals(t.unreadable, [["b", "the file is gone"]]);
});

Deno.test("added() keeps a freshly decoded track only if it is current or next", () => {
  const t = setup();
  t.dist.added(pcm(C));
  t.dist.added(pcm(A));
  assertEquals(t.output, ["+a"]);
  assertEquals(t.dist.notReady(A), []);
  assertEquals(t.dist.waitingFor(), []);
});

Deno.test("a trackState report updates the peer list the host and every peer see", () => {
  const t = setup();
  const kim = t.join("Kim");
  const sam = t.join("Sam");
  sam.report(A, "downloading", 0.3);
  sam.report(B, "downloading", 0.1);
  const forHost = t.events.findLast((e) => e.type === "peers")!.peers as Record<string, unknown>[];
  const forKim = kim.sent.findLast((m) => m.type === "peers")!;
  assertEquals(forKim, { type: "peers", peers: forHost as never });
  const s = forHost.find((p) => p.name === "Sam")!;
  assertEquals([s.track, s.progress, s.next, s.nextProgress], [
    "downloading",
    0.3,
    "downloading",
    0.1,
  ]);
});
