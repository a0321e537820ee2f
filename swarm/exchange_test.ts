/**
 * FileExchange over an in-memory network: every member has an uplink of a given rate shared
 * by its channels (messages leave in order, one at a time; a channel's bufferedAmount is what
 * it has queued), delivery is asynchronous, and `bufferedamountlow` fires when a channel's
 * queue falls to SEND_LOW_WATER.
 */
import { pseudoRandom } from "../tests/harness/bytes.ts";
import { assertEquals, assertThrows, assertTrue } from "../tests/assert.ts";
import {
  type ExchangeChannel,
  FileExchange,
  type FileExchangeOptions,
  MAX_BAD_CHUNKS,
  MAX_WAIT_TIMEOUTS,
  SEND_HIGH_WATER,
  SEND_LOW_WATER,
} from "./exchange.ts";
import { CHUNK_BYTES, chunkCount, makeManifest, MAX_FILE_BYTES } from "./manifest.ts";
import { bytesToBase64, decodeWire, encodeChunk, encodeText, type WireMessage } from "./wire.ts";

// ---------------------------------------------------------------- the fake network

type Payload = string | ArrayBuffer;

class Uplink {
  paused = false;
  #queue: { end: End; payload: Payload; size: number }[] = [];
  #budget = 0;
  #last = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Bytes per millisecond. */
  constructor(public rate: number) {}

  push(end: End, payload: Payload, size: number) {
    this.#queue.push({ end, payload, size });
    this.#start();
  }

  resume() {
    this.paused = false;
    this.#start();
  }

  stop() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue = [];
  }

  #start() {
    if (this.#timer !== null || this.paused || this.#queue.length === 0) return;
    this.#last = performance.now();
    this.#budget = 0;
    this.#timer = setTimeout(() => this.#tick(), 1);
  }

  #tick() {
    this.#timer = null;
    if (this.paused) return;
    const now = performance.now();
    this.#budget += (now - this.#last) * this.rate;
    this.#last = now;
    while (this.#queue.length > 0 && this.#queue[0].size <= this.#budget && !this.paused) {
      const { end, payload, size } = this.#queue.shift()!;
      this.#budget -= size;
      end.transmitted(payload, size);
    }
    if (this.#queue.length === 0) this.#budget = 0;
    if (this.#queue.length > 0 && !this.paused) this.#timer = setTimeout(() => this.#tick(), 1);
  }
}

class End implements ExchangeChannel {
  bufferedAmount = 0;
  maxBuffered = 0;
  closed = false;
  deliver: (data: Payload) => void = () => {};
  onLow: () => void = () => {};
  constructor(readonly up: Uplink) {}

  send(data: string | Uint8Array) {
    if (this.closed) throw new Error("channel closed");
    const payload = typeof data === "string" ? data : data.slice().buffer;
    const size = typeof data === "string" ? new TextEncoder().encode(data).length : data.length;
    this.bufferedAmount += size;
    this.maxBuffered = Math.max(this.maxBuffered, this.bufferedAmount);
    this.up.push(this, payload, size);
  }

  transmitted(payload: Payload, size: number) {
    const before = this.bufferedAmount;
    this.bufferedAmount -= size;
    if (this.closed) return;
    if (before > SEND_LOW_WATER && this.bufferedAmount <= SEND_LOW_WATER) this.onLow();
    this.deliver(payload);
  }
}

interface Node {
  id: number;
  ex: FileExchange;
  up: Uplink;
  ends: Map<number, End>;
  completed: string[];
  logs: string[];
}

/** A peer the test speaks for: what it received, decoded, and a way to send raw frames. */
interface Puppet {
  id: number;
  got: WireMessage[];
  end: End;
  send(data: string | Uint8Array): void;
}

const FAST = 50_000; // bytes per ms: 50 MB/s

class Net {
  nodes: Node[] = [];
  uplinks: Uplink[] = [];
  exchanges: FileExchange[] = [];
  #nextId = 1;

  node(options: Partial<FileExchangeOptions> = {}, rate = FAST): Node {
    const id = this.#nextId++;
    const up = new Uplink(rate);
    const n: Node = { id, up, ends: new Map(), completed: [], logs: [] } as unknown as Node;
    n.ex = new FileExchange({
      onChange: () => {},
      onComplete: (f) => n.completed.push(f),
      log: (m) => n.logs.push(m),
      ...options,
    });
    this.nodes.push(n);
    this.uplinks.push(up);
    this.exchanges.push(n.ex);
    return n;
  }

  link(a: Node, b: Node) {
    const ab = new End(a.up);
    const ba = new End(b.up);
    ab.deliver = (d) => b.ex.receive(a.id, d);
    ba.deliver = (d) => a.ex.receive(b.id, d);
    ab.onLow = () => a.ex.pump(b.id);
    ba.onLow = () => b.ex.pump(a.id);
    a.ends.set(b.id, ab);
    b.ends.set(a.id, ba);
    a.ex.addPeer(b.id, ab);
    b.ex.addPeer(a.id, ba);
  }

  unlink(a: Node, b: Node) {
    a.ends.get(b.id)!.closed = true;
    b.ends.get(a.id)!.closed = true;
    a.ex.removePeer(b.id);
    b.ex.removePeer(a.id);
  }

  mesh(nodes: Node[]) {
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) this.link(nodes[i], nodes[j]);
    }
  }

  /** A hand-driven peer linked to `n`. */
  puppet(n: Node, rate = FAST): Puppet {
    const id = this.#nextId++;
    const up = new Uplink(rate);
    this.uplinks.push(up);
    const toNode = new End(up);
    const fromNode = new End(n.up);
    const p: Puppet = {
      id,
      got: [],
      end: fromNode,
      send: (d) => toNode.send(d),
    };
    toNode.deliver = (d) => n.ex.receive(id, d);
    fromNode.deliver = (d) => {
      const m = decodeWire(d);
      if (!m.ok) throw new Error(`the exchange sent a bad frame: ${m.reason}`);
      p.got.push(m.message);
    };
    n.ends.set(id, fromNode);
    n.ex.addPeer(id, fromNode);
    return p;
  }

  close() {
    for (const ex of this.exchanges) ex.close();
    for (const up of this.uplinks) up.stop();
  }
}

async function withNet(fn: (net: Net) => Promise<void>) {
  const net = new Net();
  try {
    await fn(net);
  } finally {
    net.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

function same(a: Uint8Array | null, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const MiB = 1024 * 1024;

// ---------------------------------------------------------------- tests

Deno.test("exchange: one seeder, one leecher", () =>
  withNet(async (net) => {
    const s = net.node();
    const l = net.node();
    const bytes = pseudoRandom(MiB + 1234, 1);
    const id = s.ex.share("song.mp3", bytes);
    assertEquals(s.ex.files(), [{
      id,
      name: "song.mp3",
      sizeBytes: bytes.length,
      progress: 1,
      seeded: true,
      mine: true,
      enabled: true,
      sources: 0,
      queued: false,
    }]);
    assertTrue(same(s.ex.bytes(id), bytes));
    net.link(s, l);
    await until(() => l.ex.bytes(id) !== null, 5000, "the leecher to complete");
    assertTrue(same(l.ex.bytes(id), bytes));
    assertEquals(l.completed, [id]);
    assertEquals(l.ex.progress(id), 1);
    assertEquals(l.ex.have(), [{ file: id, progress: 1 }]);
    assertEquals(l.ex.files(), [{
      id,
      name: "song.mp3",
      sizeBytes: bytes.length,
      progress: 1,
      seeded: true,
      mine: false,
      enabled: true,
      sources: 1,
      queued: false,
    }]);
    assertEquals(s.ex.stats.bytesSent, bytes.length);
    assertEquals(s.ex.stats.peers[l.id].chunksSent, 17);
    assertEquals(l.ex.stats.bytesReceived, bytes.length);
    assertEquals(l.ex.stats.chunksRejected, 0);
    // The seeder now counts the leecher as a source.
    await until(() => s.ex.files()[0].sources === 1, 1000, "the leecher's offer");
  }));

Deno.test("exchange: one seeder, six leechers that also serve each other", () =>
  withNet(async (net) => {
    const s = net.node({}, 20_000);
    const leechers = Array.from({ length: 6 }, () => net.node({}, 20_000));
    const bytes = pseudoRandom(2 * MiB, 2);
    const id = s.ex.share("big.mp3", bytes);
    net.mesh([s, ...leechers]);
    await until(
      () => leechers.every((l) => l.ex.bytes(id) !== null),
      15_000,
      "all six leechers to complete",
    );
    for (const l of leechers) {
      assertTrue(same(l.ex.bytes(id), bytes));
      assertEquals(l.completed, [id]);
      assertEquals(l.ex.stats.chunksRejected, 0);
    }
    const seederSent = s.ex.stats.bytesSent;
    const leechersSent = leechers.reduce((n, l) => n + l.ex.stats.bytesSent, 0);
    console.log(
      `seeder sent ${(seederSent / bytes.length).toFixed(2)}× the file, leechers ${
        (leechersSent / bytes.length).toFixed(2)
      }×`,
    );
    assertTrue(seederSent < 6 * bytes.length, `the seeder sent ${seederSent} bytes`);
    assertTrue(leechersSent > 0);
    assertTrue(leechers.filter((l) => l.ex.stats.bytesSent > 0).length >= 3);
    // Every received byte was needed: requests are not duplicated without a timeout.
    const received = leechers.reduce((n, l) => n + l.ex.stats.duplicates, 0);
    assertEquals(received, 0);
  }));

Deno.test("exchange: a seeder leaves mid-download; its requests go to the other at once", () =>
  withNet(async (net) => {
    // A timeout far beyond the test's bound: only the immediate re-request can finish it.
    const l = net.node({ requestTimeoutMs: 60_000 });
    const s1 = net.node({}, 8_000);
    const s2 = net.node({}, 8_000);
    const bytes = pseudoRandom(MiB, 3);
    const id = s1.ex.share("a.mp3", bytes);
    assertEquals(s2.ex.share("same bytes, other name.mp3", bytes), id);
    net.link(l, s1);
    net.link(l, s2);
    await until(() => l.ex.progress(id) >= 0.25, 5000, "a quarter");
    assertTrue(l.ex.progress(id) < 1);
    net.unlink(l, s1);
    assertEquals(l.ex.files()[0].sources, 1);
    await until(() => l.ex.bytes(id) !== null, 5000, "completion from the other seeder");
    assertTrue(same(l.ex.bytes(id), bytes));
    assertEquals(l.ex.files()[0].name, "a.mp3", "the first name heard stays");
  }));

Deno.test("exchange: the seeder leaves; leechers finish from each other", () =>
  withNet(async (net) => {
    const s = net.node({}, 4_000);
    const a = net.node({ requestTimeoutMs: 60_000 });
    const b = net.node({ requestTimeoutMs: 60_000 });
    const bytes = pseudoRandom(MiB, 4);
    const id = s.ex.share("a.mp3", bytes);
    const chunks = Math.ceil(bytes.length / CHUNK_BYTES);
    // Watch the seeder's chunks as they arrive: once a and b hold every chunk between them,
    // the seeder goes.
    const delivered = new Set<number>();
    net.mesh([s, a, b]);
    for (const end of [s.ends.get(a.id)!, s.ends.get(b.id)!]) {
      const deliver = end.deliver;
      end.deliver = (d) => {
        deliver(d);
        const m = decodeWire(d);
        if (m.ok && m.message.type === "chunk") delivered.add(m.message.index);
      };
    }
    await until(() => delivered.size === chunks, 5000, "the seeder to send every chunk once");
    net.unlink(s, a);
    net.unlink(s, b);
    assertTrue(
      a.ex.progress(id) < 1 || b.ex.progress(id) < 1,
      "someone was still fetching when the seeder left",
    );
    await until(
      () => a.ex.bytes(id) !== null && b.ex.bytes(id) !== null,
      5000,
      "both to complete from each other",
    );
    assertTrue(same(a.ex.bytes(id), bytes) && same(b.ex.bytes(id), bytes));
    assertEquals(a.ex.files()[0].sources, 1);
  }));

Deno.test("exchange: tampered chunks are rejected; the file completes from honest peers", () =>
  withNet(async (net) => {
    const tamper = (_f: string, _i: number, b: Uint8Array) => {
      b[b.length >> 1] ^= 0x55;
      return b;
    };
    const evil = net.node({ tamper });
    const good = net.node({}, 10_000);
    const l = net.node();
    const bytes = pseudoRandom(MiB, 5);
    const id = evil.ex.share("a.mp3", bytes);
    good.ex.share("a.mp3", bytes);
    net.link(l, evil);
    net.link(l, good);
    await until(() => l.ex.bytes(id) !== null, 10_000, "completion");
    assertTrue(same(l.ex.bytes(id), bytes));
    const st = l.ex.stats;
    assertTrue(st.chunksRejected >= MAX_BAD_CHUNKS, `rejected ${st.chunksRejected}`);
    assertEquals(st.peers[evil.id].chunksRejected, st.chunksRejected);
    assertEquals(st.peers[good.id].chunksRejected, 0);
    // After three bad chunks the evil peer is no longer asked (nor counted as a source).
    assertTrue(st.peers[evil.id].chunksReceived <= MAX_BAD_CHUNKS + 8);
    assertEquals(l.ex.files()[0].sources, 1);
    assertTrue(l.logs.some((m) => /failed its hash/.test(m)));
  }));

Deno.test("exchange: a file only a tampering peer has never completes, and it is dropped", () =>
  withNet(async (net) => {
    const evil = net.node({ tamper: (_f, _i, b) => b.fill(0) });
    const l = net.node({ maxInFlightPerPeer: 2 });
    const bytes = pseudoRandom(MiB, 6);
    const id = evil.ex.share("a.mp3", bytes);
    net.link(l, evil);
    await until(() => l.ex.stats.chunksRejected >= MAX_BAD_CHUNKS, 5000, "three rejections");
    await sleep(200);
    const sent = evil.ex.stats.chunksSent;
    assertTrue(sent <= MAX_BAD_CHUNKS + 2, `evil sent ${sent}`);
    await sleep(200);
    assertEquals(evil.ex.stats.chunksSent, sent, "no more requests");
    assertEquals(l.ex.progress(id), 0);
    assertEquals(l.ex.bytes(id), null);
    assertEquals(l.completed, []);
  }));

Deno.test("exchange: a bad manifest is refused and another peer's is used", () =>
  withNet(async (net) => {
    const l = net.node();
    const bytes = pseudoRandom(3 * CHUNK_BYTES, 7);
    const m = makeManifest("a.mp3", bytes);
    const have = bytesToBase64(new Uint8Array([0xe0]));
    const liar = net.puppet(l);
    liar.send(encodeText({
      type: "files",
      files: [{ id: m.id, name: "a.mp3", sizeBytes: m.sizeBytes, chunks: 3, have }],
    }));
    await until(() => liar.got.some((g) => g.type === "getManifest"), 2000, "getManifest");
    const hashes = m.hashes.slice();
    hashes[0] ^= 1;
    liar.send(encodeText({
      type: "manifest",
      file: m.id,
      name: "a.mp3",
      sizeBytes: m.sizeBytes,
      chunkBytes: m.chunkBytes,
      hashes: bytesToBase64(hashes),
    }));
    await until(() => l.logs.some((x) => /bad manifest/.test(x)), 2000, "the refusal");
    assertEquals(l.ex.progress(m.id), 0);
    // No chunk was asked of the liar, and it is not asked again.
    await sleep(50);
    assertEquals(liar.got.filter((g) => g.type === "getManifest").length, 1);
    assertTrue(!liar.got.some((g) => g.type === "get"));
    const s = net.node();
    s.ex.share("a.mp3", bytes);
    net.link(l, s);
    // Well within the request timeout: the liar is not asked for chunks either.
    await until(() => l.ex.bytes(m.id) !== null, 2000, "completion from the honest seeder");
    assertTrue(!liar.got.some((g) => g.type === "get"));
    assertEquals(l.ex.stats.peers[liar.id].chunksRejected, 1);
    assertTrue(same(l.ex.bytes(m.id), bytes));
  }));

Deno.test("exchange: disabled files are neither fetched nor offered", () =>
  withNet(async (net) => {
    const s = net.node();
    const l = net.node({ autoFetch: false });
    const bytes = pseudoRandom(MiB, 8);
    const id = s.ex.share("a.mp3", bytes);
    net.link(s, l);
    await until(() => l.ex.files().length === 1, 2000, "the offer");
    await sleep(100);
    assertEquals(l.ex.files()[0].enabled, false);
    assertEquals(l.ex.progress(id), 0);
    assertEquals(s.ex.stats.bytesSent, 0);
    l.ex.setEnabled(id, true);
    await until(() => l.ex.bytes(id) !== null, 5000, "completion once enabled");

    // With autoFetch, a file disabled before anyone offers it is not fetched either.
    const m = net.node();
    m.ex.setEnabled(id, false);
    net.link(s, m);
    await until(() => m.ex.files().length === 1, 2000, "the offer");
    await sleep(100);
    assertEquals(m.ex.progress(id), 0);
    assertEquals(s.ex.stats.peers[m.id].chunksSent, 0);

    // Disabling my own file stops offering it: the others no longer list it.
    const owner = net.node();
    const viewer = net.node({ autoFetch: false });
    const other = pseudoRandom(100, 9);
    const id2 = owner.ex.share("b.mp3", other);
    net.link(owner, viewer);
    await until(() => viewer.ex.files().length === 1, 2000, "b offered");
    owner.ex.setEnabled(id2, false);
    await until(() => viewer.ex.files().length === 0, 2000, "b withdrawn");
    assertEquals(owner.ex.files()[0].enabled, false);
    assertTrue(same(owner.ex.bytes(id2), other), "still held");
    // Asked anyway, it says no.
    const asker = net.puppet(owner);
    asker.send(encodeText({ type: "get", file: id2, index: 0 }));
    await until(() => asker.got.some((g) => g.type === "nope"), 2000, "nope");
    owner.ex.setEnabled(id2, true);
    await until(() => viewer.ex.files().length === 1, 2000, "b offered again");
  }));

Deno.test("exchange: want() fetches the selected file first", () =>
  withNet(async (net) => {
    const s = net.node({}, 10_000);
    const l = net.node({ maxInFlightPerPeer: 2 });
    const a = pseudoRandom(MiB, 10);
    const b = pseudoRandom(MiB, 11);
    const idA = s.ex.share("a.mp3", a);
    const idB = s.ex.share("b.mp3", b);
    l.ex.want(idB);
    net.link(s, l);
    await until(() => l.completed.length === 2, 5000, "both files");
    assertEquals(l.completed, [idB, idA]);
    assertTrue(same(l.ex.bytes(idA), a) && same(l.ex.bytes(idB), b));
    assertEquals(l.ex.have().map((h) => h.file), [idB, idA]);
  }));

Deno.test("exchange: replies wait while the channel holds over 1 MiB", () =>
  withNet(async (net) => {
    const s = net.node();
    const l = net.node({ maxInFlightPerPeer: 64 });
    const bytes = pseudoRandom(4 * MiB, 12);
    const id = s.ex.share("a.mp3", bytes);
    net.link(s, l);
    await until(() => s.ex.stats.chunksSent > 0, 2000, "the first chunk");
    s.up.paused = true;
    await sleep(100);
    const end = s.ends.get(l.id)!;
    assertTrue(end.bufferedAmount <= SEND_HIGH_WATER + CHUNK_BYTES + 4096, `${end.bufferedAmount}`);
    const sentWhilePaused = s.ex.stats.chunksSent;
    await sleep(50);
    assertEquals(s.ex.stats.chunksSent, sentWhilePaused);
    s.up.resume();
    await until(() => l.ex.bytes(id) !== null, 5000, "completion after the drain");
    assertTrue(end.maxBuffered <= SEND_HIGH_WATER + CHUNK_BYTES + 4096, `${end.maxBuffered}`);
  }));

Deno.test("exchange: an unanswered request goes elsewhere after the timeout", () =>
  withNet(async (net) => {
    const l = net.node({ requestTimeoutMs: 150 });
    const s = net.node({}, 5_000);
    const bytes = pseudoRandom(MiB, 13);
    const id = s.ex.share("a.mp3", bytes);
    const m = makeManifest("a.mp3", bytes);
    // A peer that claims every chunk and never answers.
    const mute = net.puppet(l);
    mute.send(encodeText({
      type: "files",
      files: [{
        id,
        name: "a.mp3",
        sizeBytes: m.sizeBytes,
        chunks: 16,
        have: bytesToBase64(new Uint8Array([0xff, 0xff])),
      }],
    }));
    await sleep(20);
    net.link(l, s);
    await until(() => l.ex.bytes(id) !== null, 8000, "completion");
    assertTrue(same(l.ex.bytes(id), bytes));
    const gets = mute.got.filter((g) => g.type === "get").length;
    const cancels = mute.got.filter((g) => g.type === "cancel").length;
    assertTrue(gets > 0 && cancels > 0, `${gets} gets, ${cancels} cancels`);
  }));

Deno.test("exchange: busy seeders that keep answering are waited for: no chunk comes twice", () =>
  withNet(async (net) => {
    // Each seeder sends a chunk every ~65 ms, so the last of eight requests waits ~0.5 s:
    // past the 200 ms timeout, yet the seeder answers all along. Re-asking the other seeder
    // then would fetch chunks twice.
    const l = net.node({ requestTimeoutMs: 200 });
    const seeders = [net.node({}, 1000), net.node({}, 1000)];
    const bytes = pseudoRandom(2 * MiB, 17);
    const id = seeders[0].ex.share("busy.mp3", bytes);
    seeders[1].ex.share("busy.mp3", bytes);
    for (const s of seeders) net.link(s, l);
    await until(() => l.ex.bytes(id) !== null, 10_000, "completion");
    assertTrue(same(l.ex.bytes(id), bytes));
    const got = seeders.map((s) => l.ex.stats.peers[s.id].chunksReceived);
    assertEquals(l.ex.stats.duplicates, 0, `chunks from each seeder: ${got.join(", ")}`);
    assertEquals(got[0] + got[1], 32, "chunks received in all");
    assertTrue(got.every((n) => n > 4), `both seeders served: ${got.join(", ")}`);
  }));

/**
 * A hand-driven seeder of `bytes` (every chunk offered; the manifest sent when asked): every
 * `everyMs` it answers the oldest request `answer` lets through (a chunk), until `done`.
 * Returns when it stopped; `outstanding()` is how many requests it holds unanswered.
 */
function puppetSeeder(net: Net, l: Node, name: string, bytes: Uint8Array) {
  const m = makeManifest(name, bytes);
  const peer = net.puppet(l);
  const chunks = chunkCount(m);
  const have = new Uint8Array(Math.ceil(chunks / 8));
  for (let i = 0; i < chunks; i++) have[i >> 3] |= 0x80 >> (i & 7);
  peer.send(encodeText({
    type: "files",
    files: [{ id: m.id, name, sizeBytes: m.sizeBytes, chunks, have: bytesToBase64(have) }],
  }));
  const gets: Extract<WireMessage, { type: "get" }>[] = [];
  let cancels = 0;
  const started = performance.now();
  /** Takes in what the exchange sent: requests queue, cancels unqueue, the manifest is sent. */
  const collect = () => {
    for (const msg of peer.got.splice(0)) {
      if (msg.type === "get") gets.push(msg);
      if (msg.type === "cancel") {
        cancels++;
        gets.splice(gets.findIndex((g) => g.index === msg.index), 1);
      }
      if (msg.type !== "getManifest") continue;
      peer.send(encodeText({
        type: "manifest",
        file: m.id,
        name,
        sizeBytes: m.sizeBytes,
        chunkBytes: m.chunkBytes,
        hashes: bytesToBase64(m.hashes),
      }));
    }
  };
  const chunk = (index: number) => {
    const start = index * CHUNK_BYTES;
    peer.send(encodeChunk(m.id, index, bytes.subarray(start, start + CHUNK_BYTES)));
  };
  return {
    id: m.id,
    started,
    gets,
    collect,
    chunk,
    cancels: () => cancels,
    outstanding: () => gets.length,
    /** Serves for up to `ms`; `answer` may skip a request (false: it is dropped unanswered). */
    async serve(ms: number, everyMs: number, answer: (index: number, at: number) => boolean) {
      const until = performance.now() + ms;
      while (l.ex.bytes(m.id) === null && performance.now() < until) {
        await sleep(everyMs);
        collect();
        const msg = gets.shift();
        if (msg && answer(msg.index, performance.now() - started)) chunk(msg.index);
      }
    },
  };
}

Deno.test("exchange: a request a busy peer skips still lapses, after MAX_WAIT_TIMEOUTS", () =>
  withNet(async (net) => {
    const timeoutMs = 100;
    const l = net.node({ requestTimeoutMs: timeoutMs });
    const bytes = pseudoRandom(2 * MiB, 19);
    const peer = puppetSeeder(net, l, "skip.mp3", bytes);
    // Answers every request, one each 40 ms, except the first ask for the first chunk asked.
    const asked = new Map<number, number[]>();
    let skipped: number | null = null, served = 0, lastAnswerMs = 0;
    await peer.serve(10_000, 40, (index, at) => {
      asked.set(index, [...asked.get(index) ?? [], at]);
      if (skipped === null) {
        skipped = index;
        return false;
      }
      served++;
      lastAnswerMs = at;
      return true;
    });
    assertTrue(same(l.ex.bytes(peer.id), bytes), "the file did not complete");
    const times = asked.get(skipped!)!;
    assertEquals(times.length, 2, `asks for chunk ${skipped}: ${times.join(", ")}`);
    // Asked again while the peer was still answering the others, within the cap.
    const waited = times[1] - times[0];
    assertTrue(
      waited >= MAX_WAIT_TIMEOUTS * timeoutMs - 50 && waited < MAX_WAIT_TIMEOUTS * timeoutMs + 400,
      `the skipped request was asked again after ${waited.toFixed(0)} ms`,
    );
    assertTrue(times[1] < lastAnswerMs, `asked again at ${times[1]}, last answer ${lastAnswerMs}`);
    assertEquals(served, 32, "chunks sent: each once, the skipped one when asked again");
  }));

Deno.test("exchange: a peer that answers slowly is asked fewer chunks at once, then more again", () =>
  withNet(async (net) => {
    const l = net.node({ requestTimeoutMs: 400 });
    const bytes = pseudoRandom(3 * MiB, 23);
    const peer = puppetSeeder(net, l, "slow.mp3", bytes);
    const always = () => true;
    // One chunk each 150 ms: eight requests would wait 1.2 s, three times the timeout.
    let most = 0;
    await peer.serve(400, 150, always);
    most = peer.outstanding();
    await peer.serve(1600, 150, always);
    const slow = peer.outstanding();
    // Prompt again: the share grows back.
    let fast = 0;
    await peer.serve(1500, 10, () => {
      fast = Math.max(fast, peer.outstanding() + 1);
      return true;
    });
    assertTrue(same(l.ex.bytes(peer.id), bytes), "the file did not complete");
    assertTrue(most >= 6, `${most} requests outstanding at first`);
    assertTrue(slow <= 2, `${slow} requests outstanding after 2 s of slow answers`);
    assertTrue(fast >= 6, `at most ${fast} outstanding once answers came promptly`);
    assertEquals(l.ex.stats.duplicates, 0, "no chunk came twice");
  }));

Deno.test("exchange: a member that stalled reads what came meanwhile before a request lapses", () =>
  withNet(async (net) => {
    const l = net.node({ requestTimeoutMs: 100 });
    const bytes = pseudoRandom(MiB, 29);
    const peer = puppetSeeder(net, l, "stall.mp3", bytes);
    await until(() => (peer.collect(), peer.gets.length > 0), 2000, "the first requests");
    await sleep(20);
    peer.collect();
    const asked = peer.gets.map((g) => g.index);
    // The member's thread is held for 0.5 s, past every deadline; the answers were sent
    // meanwhile and arrive just after (timers that came due while it was held run first).
    const heldUntil = performance.now() + 500;
    while (performance.now() < heldUntil) { /* a busy device */ }
    setTimeout(() => asked.forEach(peer.chunk), 0);
    peer.gets.splice(0);
    await peer.serve(5000, 5, () => true);
    assertTrue(same(l.ex.bytes(peer.id), bytes), "the file did not complete");
    assertEquals(peer.cancels(), 0, `requests given up while the member itself was held`);
    assertTrue(
      !l.logs.some((x) => /lapsed/.test(x)),
      l.logs.filter((x) => /lapsed/.test(x)).join("; "),
    );
  }));

Deno.test("exchange: sharing limits", () =>
  withNet((net) => {
    const n = net.node();
    assertThrows(() => n.ex.share("empty.mp3", new Uint8Array(0)), /empty/);
    assertThrows(() => n.ex.share("big.mp3", new Uint8Array(MAX_FILE_BYTES + 1)), /50 MB/);
    const a = n.ex.share("a.mp3", pseudoRandom(1000, 1));
    assertEquals(n.ex.share("a again.mp3", pseudoRandom(1000, 1)), a, "same bytes, same file");
    n.ex.share("b.mp3", pseudoRandom(1000, 2));
    n.ex.share("c.mp3", pseudoRandom(1000, 3));
    assertThrows(() => n.ex.share("d.mp3", pseudoRandom(1000, 4)), /already share 3 files/);
    assertEquals(n.ex.files().filter((f) => f.mine).length, 3);
    assertEquals(n.ex.files()[0].name, "a.mp3");
    return Promise.resolve();
  }));

Deno.test("exchange: malformed and hostile frames from a peer break nothing", () =>
  withNet(async (net) => {
    const l = net.node();
    const s = net.node();
    const bytes = pseudoRandom(MiB, 14);
    const id = s.ex.share("a.mp3", bytes);
    const bad = net.puppet(l);
    const unknown = "ef".repeat(32);
    const frames: (string | Uint8Array)[] = [
      "",
      "not json",
      "{}",
      '{"type":"files","files":"all"}',
      JSON.stringify({ type: "get", file: id, index: -1 }),
      JSON.stringify({ type: "have", file: id, index: 0, extra: true }),
      "x".repeat(200_000),
      new Uint8Array([1, 2, 3]),
      new Uint8Array(100),
      // Well formed but pointless or hostile:
      encodeText({ type: "have", file: unknown, index: 3 }),
      encodeText({ type: "get", file: unknown, index: 0 }),
      encodeText({ type: "get", file: id, index: 799 }),
      encodeText({ type: "getManifest", file: unknown }),
      encodeText({ type: "nope", file: id, index: 2 }),
      encodeText({ type: "nope", file: unknown }),
      encodeText({ type: "cancel", file: id, index: 0 }),
      encodeText({
        type: "manifest",
        file: unknown,
        name: "x",
        sizeBytes: 1,
        chunkBytes: CHUNK_BYTES,
        hashes: bytesToBase64(new Uint8Array(32)),
      }),
      encodeChunk(id, 0, new Uint8Array(100)),
      encodeChunk(unknown, 0, new Uint8Array(100)),
    ];
    for (const f of frames) bad.send(f);
    // Calls with frames a channel would never carry do not throw either.
    l.ex.receive(bad.id, new DataView(new ArrayBuffer(3)));
    l.ex.receive(999, "from nobody");
    l.ex.receive(bad.id, null as unknown as string);
    await until(() => l.ex.stats.peers[bad.id]?.malformed >= 9, 2000, "the malformed frames");
    await until(() => bad.got.filter((g) => g.type === "nope").length >= 3, 2000, "the nopes");
    net.link(l, s);
    await until(() => l.ex.bytes(id) !== null, 5000, "completion despite the noise");
    assertTrue(same(l.ex.bytes(id), bytes));
    // The noise peer is served too, now that there is something to serve.
    bad.send(encodeText({ type: "get", file: id, index: 0 }));
    await until(() => bad.got.some((g) => g.type === "chunk"), 2000, "a chunk for the puppet");
    assertEquals(l.ex.files().map((f) => f.id), [id]);
  }));

Deno.test("exchange: a capped uplink sends no faster than its cap, and still delivers", () =>
  withNet(async (net) => {
    // 512 KiB at 1 MiB/s: at least ~0.4 s (the bucket starts with up to two chunks' worth).
    const rate = MiB;
    const s = net.node({ uplinkBytesPerSec: rate });
    const l = net.node();
    const bytes = pseudoRandom(8 * CHUNK_BYTES, 9);
    const id = s.ex.share("capped.mp3", bytes);
    const t0 = performance.now();
    net.link(s, l);
    await until(() => l.ex.bytes(id) !== null, 10_000, "the leecher to complete");
    const elapsedMs = performance.now() - t0;
    const floorMs = (bytes.length - 2 * CHUNK_BYTES) / rate * 1000;
    assertTrue(
      elapsedMs >= floorMs,
      `took ${elapsedMs.toFixed(0)} ms, the cap allows ≥ ${floorMs} ms`,
    );
    assertTrue(same(l.ex.bytes(id), bytes));
  }));

Deno.test("exchange: files being fetched hold at most maxIncompleteBytes; the rest wait their turn", () =>
  withNet(async (net) => {
    // Two seeders, a file each: without the cap both would arrive at once.
    const seeders = [net.node(), net.node()];
    const l = net.node({ maxIncompleteBytes: MiB + MiB / 2 });
    const files = [0, 1].map((k) => pseudoRandom(MiB + 1000 * k, 20 + k));
    const ids = files.map((b, k) => seeders[k].ex.share(`f${k}.mp3`, b));
    for (const s of seeders) net.link(s, l);
    // Sampled while it fetches: the files started and not complete, in bytes.
    let most = 0, queuedSeen = false;
    const started = () =>
      l.ex.files().filter((f) => !f.seeded && f.progress > 0).reduce((n, f) => n + f.sizeBytes, 0);
    const watch = setInterval(() => {
      most = Math.max(most, started());
      // The one waiting says so (the page shows "queued", not 0 %); never one that has begun.
      for (const f of l.ex.files()) {
        if (f.queued) {
          queuedSeen = true;
          assertTrue(f.progress === 0 && !f.seeded && f.enabled, JSON.stringify(f));
        }
      }
    }, 1);
    try {
      await until(() => l.completed.length === 2, 10_000, "both files, in turns");
    } finally {
      clearInterval(watch);
    }
    ids.forEach((id, k) => assertTrue(same(l.ex.bytes(id), files[k]), `file ${k}`));
    // One file at a time: two would be over the cap.
    assertTrue(most > 0 && most <= MiB + 1000, `held ${most} bytes of unfinished files`);
    assertTrue(queuedSeen, "the waiting file was never reported queued");
    assertTrue(l.ex.files().every((f) => !f.queued), "a file still queued at the end");
  }));

Deno.test("exchange: files larger than maxIncompleteBytes are still fetched, one at a time", () =>
  withNet(async (net) => {
    const seeders = [net.node(), net.node()];
    const l = net.node({ maxIncompleteBytes: MiB / 2 });
    const files = [0, 1].map((k) => pseudoRandom(MiB, 30 + k));
    const ids = files.map((b, k) => seeders[k].ex.share(`g${k}.mp3`, b));
    for (const s of seeders) net.link(s, l);
    let both = false;
    const watch = setInterval(() => {
      both ||= l.ex.files().filter((f) => !f.seeded && f.progress > 0).length > 1;
    }, 1);
    try {
      await until(() => l.completed.length === 2, 10_000, "both files");
    } finally {
      clearInterval(watch);
    }
    ids.forEach((id, k) => assertTrue(same(l.ex.bytes(id), files[k]), `file ${k}`));
    assertTrue(!both, "two files were held unfinished at once");
  }));
