/**
 * A member's side of the swarm's file exchange: which files it shares and fetches, over one
 * reliable ordered data channel per peer ({@link ./wire.ts}). Pure TypeScript: a page and a
 * native test member run it unchanged.
 *
 * - Shared files are hashed into a manifest ({@link ./manifest.ts}); the file id is the
 *   manifest's hash, so every chunk is checked against it whoever sends it.
 * - Every file a peer offers is fetched while it is enabled here (by default, all of them):
 *   its manifest from one peer (checked against the id), then its missing chunks from every
 *   peer that has them, rarest first (ties in an order random per member), the wanted file
 *   first. Each peer gets at most `maxInFlightPerPeer` requests outstanding, fewer while it
 *   answers slowly: an answer later than half the timeout halves its share (once a timeout),
 *   a prompt one gives one back. A seeder serving nineteen members thus holds short queues,
 *   and fewer requests wait on a peer that stalls (each would be asked elsewhere: twice).
 * - A chunk that fails its hash is dropped and counted; that peer is not asked for it again,
 *   and after {@link MAX_BAD_CHUNKS} bad chunks (or manifests) it is not asked for anything.
 *   A request goes to another source once its peer has answered none of this member's
 *   requests for `requestTimeoutMs` (a busy seeder that keeps answering is waited for: asking
 *   elsewhere would fetch the chunk twice); so do a departed peer's requests, at once. Time
 *   this member itself stalled (its timer fired late) does not count as anyone's silence.
 * - Every verified chunk is announced (`have`) and served to whoever asks, before the file is
 *   complete. Replies wait while the channel holds more than {@link SEND_HIGH_WATER} bytes;
 *   the caller calls {@link FileExchange.pump} when it drains (`bufferedamountlow` with the
 *   threshold at {@link SEND_LOW_WATER}).
 *
 * The caller owns the channels: it wires `channel.onmessage` to {@link FileExchange.receive}
 * (with `binaryType = "arraybuffer"`), `onbufferedamountlow` to {@link FileExchange.pump}, and
 * calls {@link FileExchange.removePeer} when a channel closes.
 */
import {
  CHUNK_BYTES,
  chunkCount,
  chunkRange,
  cleanFileName,
  makeManifest,
  type Manifest,
  manifestProblem,
  sizeProblem,
  verifyChunk,
} from "./manifest.ts";
import { MAX_SHARED_FILES } from "./protocol.ts";
import {
  base64ToBytes,
  bitfieldBytes,
  bytesToBase64,
  decodeBitfield,
  decodeWire,
  encodeChunk,
  encodeText,
  type FileOffer,
  getBit,
  MAX_OFFERS,
  setBit,
  type WireText,
} from "./wire.ts";

/** What the exchange needs of a data channel (an `RTCDataChannel` has it). */
export interface ExchangeChannel {
  send(data: string | Uint8Array<ArrayBuffer>): void;
  readonly bufferedAmount: number;
}

export interface FileExchangeOptions {
  /** Something {@link FileExchange.files} shows changed (called at most once per microtask). */
  onChange: () => void;
  /** A fetched file is complete: every chunk verified. */
  onComplete?: (fileId: string) => void;
  log?: (msg: string) => void;
  /** Chunk requests outstanding to one peer at most (default 8). */
  maxInFlightPerPeer?: number;
  /**
   * A manifest request unanswered this long goes elsewhere, and so do chunk requests to a
   * peer that has answered none for this long (default 4000 ms).
   */
  requestTimeoutMs?: number;
  /** Fetch every file a peer offers unless disabled here (default true). */
  autoFetch?: boolean;
  /**
   * Bytes of files being fetched held at once (default {@link MAX_INCOMPLETE_BYTES}): a file
   * is held whole while it arrives, so twenty members sharing three large files each would
   * otherwise ask a phone for gigabytes. The others wait their turn; the wanted file never.
   */
  maxIncompleteBytes?: number;
  /**
   * Testing aid: this member uploads at most this many chunk bytes a second, over all its
   * peers (a phone's uplink on one machine, where every member otherwise shares loopback).
   */
  uplinkBytesPerSec?: number;
  /** Tests only: rewrites every chunk this member sends (a malicious seeder). */
  tamper?: (fileId: string, index: number, bytes: Uint8Array) => Uint8Array;
}

/** One file as the UI shows it (the page's SwarmFileView adds whether it plays here). */
export interface FileInfo {
  /** SHA-256 of the file's manifest, hex. */
  id: string;
  name: string;
  sizeBytes: number;
  /** Verified fraction, 0..1. */
  progress: number;
  /** Complete here: every chunk verified, offered to others. */
  seeded: boolean;
  /** Shared from this member. */
  mine: boolean;
  /** Fetching (for mine: offering) is on; off, the file is neither fetched nor offered. */
  enabled: boolean;
  /** Connected peers offering chunks of it. */
  sources: number;
  /**
   * Enabled and offered, but not started: it waits until the files being fetched leave room
   * ({@link FileExchangeOptions.maxIncompleteBytes}).
   */
  queued: boolean;
}

export interface PeerStats {
  /** Chunk payload bytes. */
  bytesSent: number;
  bytesReceived: number;
  chunksSent: number;
  /** Chunks received, good or bad. */
  chunksReceived: number;
  /** Chunks (and manifests) that failed verification. */
  chunksRejected: number;
  /** Verified chunks that were already here. */
  duplicates: number;
  /** Frames refused by the wire decoder. */
  malformed: number;
}

export interface ExchangeStats extends PeerStats {
  /** Per peer id, including peers that left. */
  peers: Record<number, PeerStats>;
}

/** Chunk replies wait while a channel buffers more than this. */
export const SEND_HIGH_WATER = 1024 * 1024;
/** The `bufferedAmountLowThreshold` callers should set (then call pump()). */
export const SEND_LOW_WATER = 256 * 1024;
/** Bad chunks or manifests after which a peer is asked for nothing. */
export const MAX_BAD_CHUNKS = 3;
/** Chunk requests from one peer queued here at most; beyond, `nope`. */
export const MAX_QUEUED_PER_PEER = 64;
/** File entries kept about at most (files offered by peers, mine, fetched). */
const MAX_KNOWN_FILES = 2 * MAX_OFFERS;
/** A timer this late (ms) means this member stalled: waits are extended, not lapsed. */
const STALL_MS = 250;
/** A chunk request lapses after this many request timeouts even if its peer answers others. */
export const MAX_WAIT_TIMEOUTS = 4;
/** Default {@link FileExchangeOptions.maxIncompleteBytes}: two files at the size cap. */
export const MAX_INCOMPLETE_BYTES = 100 * 1024 * 1024;

interface Request {
  peer: number;
  deadline: number;
  /** When it was sent. */
  sentMs: number;
}

interface FileState {
  id: string;
  name: string;
  sizeBytes: number;
  chunks: number;
  mine: boolean;
  enabled: boolean;
  manifest: Manifest | null;
  data: Uint8Array | null;
  have: Uint8Array | null;
  haveCount: number;
  /** Chunk indices in this member's random order (the tie-break of rarest-first). */
  order: number[];
  requests: Map<number, Request>;
  /** Chunk → peers that sent it bad. */
  bad: Map<number, Set<number>>;
  /** Chunk → peers that let a request for it time out. */
  slow: Map<number, Set<number>>;
  manifestReq: Request | null;
  /** Peers that refused the manifest (until they offer it again). */
  manifestRefused: Set<number>;
  /** Peers that sent a bad manifest: asked nothing more about this file. */
  distrusted: Set<number>;
  manifestSlow: Set<number>;
}

interface Offer {
  chunks: number;
  have: Uint8Array;
  count: number;
}

interface PeerState {
  id: number;
  channel: ExchangeChannel;
  offers: Map<string, Offer>;
  inFlight: number;
  /**
   * When this peer last answered a chunk request of mine (a chunk or a `nope`), or was asked
   * one with none outstanding: it is waited for while this is recent.
   */
  livelyMs: number;
  bad: number;
  queue: { file: string; index: number }[];
  stats: PeerStats;
  /** Requests it may have outstanding now (1 … maxInFlightPerPeer). */
  cap: number;
  /** When its cap was last halved. */
  cutMs: number;
}

const emptyStats = (): PeerStats => ({
  bytesSent: 0,
  bytesReceived: 0,
  chunksSent: 0,
  chunksReceived: 0,
  chunksRejected: 0,
  duplicates: 0,
  malformed: 0,
});

function popcount(field: Uint8Array): number {
  let n = 0;
  for (let b of field) {
    for (; b; b &= b - 1) n++;
  }
  return n;
}

function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export class FileExchange {
  readonly #o: FileExchangeOptions;
  readonly #maxInFlight: number;
  readonly #timeoutMs: number;
  readonly #maxIncomplete: number;
  readonly #files = new Map<string, FileState>();
  readonly #peers = new Map<number, PeerState>();
  readonly #peerStats = new Map<number, PeerStats>();
  /** setEnabled/want for files not known yet. */
  readonly #prefs = new Map<string, boolean>();
  #priority: string | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;
  #scheduleQueued = false;
  #notifyQueued = false;
  #closed = false;

  /** The uplink cap's bucket: bytes that may go now, and when it was last filled. */
  #tokens = 0;
  #filledMs = 0;
  #refill: ReturnType<typeof setTimeout> | undefined;

  constructor(options: FileExchangeOptions) {
    this.#o = options;
    this.#maxInFlight = Math.max(1, options.maxInFlightPerPeer ?? 8);
    this.#timeoutMs = Math.max(1, options.requestTimeoutMs ?? 4000);
    this.#maxIncomplete = options.maxIncompleteBytes ?? MAX_INCOMPLETE_BYTES;
  }

  // ---------------------------------------------------------------- API

  /**
   * Shares a file from this member and returns its id. Throws an Error with a sentence for an
   * empty file, one over 50 MB, or a fourth file of this member's own. Sharing bytes already
   * shared returns the same id.
   */
  share(name: string, bytes: Uint8Array): string {
    const clean = cleanFileName(name);
    const problem = sizeProblem(bytes.byteLength, `“${clean}”`);
    if (problem) throw new Error(problem);
    const mine = [...this.#files.values()].filter((f) => f.mine).length;
    if (mine >= MAX_SHARED_FILES) {
      throw new Error(
        `You already share ${MAX_SHARED_FILES} files, the most one device can share.`,
      );
    }
    const m = makeManifest(clean, bytes);
    let f = this.#files.get(m.id);
    if (f?.mine) return m.id;
    if (!f) f = this.#newFile(m.id, m.name, m.sizeBytes, chunkCount(m), true)!;
    this.#dropRequests(f, true);
    f.mine = true;
    f.enabled = true;
    f.name = m.name;
    this.#prefs.set(f.id, true);
    this.#setManifest(f, m);
    f.data = bytes.slice();
    f.have!.fill(0xff);
    if (f.chunks % 8) f.have![f.have!.length - 1] = 0xff << (8 - (f.chunks % 8)) & 0xff;
    f.haveCount = f.chunks;
    this.#log(`sharing “${f.name}” (${f.sizeBytes} bytes, ${f.chunks} chunks) as ${short(f.id)}`);
    this.#sendFiles();
    this.#notify();
    return f.id;
  }

  /** Starts exchanging with a peer over an open channel: sends it my `files`. */
  addPeer(peerId: number, channel: ExchangeChannel): void {
    if (this.#closed) return;
    if (this.#peers.has(peerId)) this.removePeer(peerId);
    let stats = this.#peerStats.get(peerId);
    if (!stats) this.#peerStats.set(peerId, stats = emptyStats());
    const p: PeerState = {
      id: peerId,
      channel,
      offers: new Map(),
      inFlight: 0,
      livelyMs: Date.now(),
      bad: 0,
      queue: [],
      stats,
      cap: this.#maxInFlight,
      cutMs: 0,
    };
    this.#peers.set(peerId, p);
    this.#send(p, this.#filesMessage());
  }

  /** Forgets a peer (its channel closed): its outstanding requests go to other sources. */
  removePeer(peerId: number): void {
    const p = this.#peers.get(peerId);
    if (!p) return;
    this.#peers.delete(peerId);
    for (const f of this.#files.values()) {
      for (const [i, r] of f.requests) if (r.peer === peerId) f.requests.delete(i);
      if (f.manifestReq?.peer === peerId) f.manifestReq = null;
    }
    this.#notify();
    this.#kick();
  }

  /** Fetching (for my own or a fetched file: offering) on or off. */
  setEnabled(fileId: string, on: boolean): void {
    this.#prefs.set(fileId, on);
    const f = this.#files.get(fileId);
    if (!f || f.enabled === on) return;
    const offered = this.#offered(f);
    f.enabled = on;
    if (!on) {
      this.#dropRequests(f, true);
      for (const p of this.#peers.values()) {
        const keep = p.queue.filter((q) => q.file !== fileId);
        for (const q of p.queue) if (q.file === fileId) this.#sendText(p, { type: "nope", ...q });
        p.queue = keep;
      }
    }
    if (offered !== this.#offered(f)) this.#sendFiles();
    this.#notify();
    this.#kick();
  }

  /** Enables a file and fetches it before the others (the director selected it). */
  want(fileId: string): void {
    this.#priority = fileId;
    this.setEnabled(fileId, true);
    this.#kick();
  }

  /** Files I share, hold chunks of, or a connected peer offers. */
  files(): FileInfo[] {
    const out: FileInfo[] = [];
    for (const f of this.#files.values()) {
      const sources = this.#sources(f);
      if (!f.mine && f.haveCount === 0 && sources === 0) continue;
      out.push({
        id: f.id,
        name: f.name,
        sizeBytes: f.sizeBytes,
        progress: f.haveCount / f.chunks,
        seeded: this.#complete(f),
        mine: f.mine,
        enabled: f.enabled,
        sources,
        queued: f.enabled && !f.mine && !f.manifest && !f.manifestReq && sources > 0 &&
          !this.#complete(f),
      });
    }
    return out;
  }

  /** The file's bytes once complete (every chunk verified), else null. Do not modify them. */
  bytes(fileId: string): Uint8Array | null {
    const f = this.#files.get(fileId);
    return f && this.#complete(f) ? f.data : null;
  }

  /** Verified fraction of a file, 0..1 (0 when unknown). */
  progress(fileId: string): number {
    const f = this.#files.get(fileId);
    return f ? f.haveCount / f.chunks : 0;
  }

  /** My progress per enabled file, the wanted one first, for the status message. */
  have(): { file: string; progress: number }[] {
    const list = this.files().filter((f) => f.enabled);
    list.sort((a, b) => Number(b.id === this.#priority) - Number(a.id === this.#priority));
    return list.slice(0, MAX_OFFERS).map((f) => ({ file: f.id, progress: f.progress }));
  }

  /** Totals and per-peer counts (a fresh copy each read). */
  get stats(): ExchangeStats {
    const total = emptyStats();
    const peers: Record<number, PeerStats> = {};
    for (const [id, s] of this.#peerStats) {
      peers[id] = { ...s };
      for (const k of Object.keys(total) as (keyof PeerStats)[]) total[k] += s[k];
    }
    return { ...total, peers };
  }

  /** Handles one frame from a peer's channel; a malformed one is logged and ignored. */
  receive(peerId: number, data: string | ArrayBuffer | ArrayBufferView): void {
    const p = this.#peers.get(peerId);
    if (!p || this.#closed) return;
    const d = decodeWire(data);
    if (!d.ok) {
      p.stats.malformed++;
      this.#log(`peer ${peerId}: ignored a frame: ${d.reason}`);
      return;
    }
    const m = d.message;
    try {
      switch (m.type) {
        case "files":
          return this.#onFiles(p, m.files);
        case "have":
          return this.#onHave(p, m.file, m.index);
        case "getManifest":
          return this.#onGetManifest(p, m.file);
        case "manifest":
          return this.#onManifest(p, m);
        case "get":
          return this.#onGet(p, m.file, m.index);
        case "cancel":
          p.queue = p.queue.filter((q) => q.file !== m.file || q.index !== m.index);
          return;
        case "nope":
          if (m.index !== undefined) p.livelyMs = Date.now();
          return this.#onNope(p, m.file, m.index);
        case "chunk":
          p.livelyMs = Date.now();
          return this.#onChunk(p, m.file, m.index, m.bytes);
      }
    } catch (e) {
      this.#log(`peer ${peerId}: ${m.type} failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  /** Sends queued chunk replies on channels that have room (call on `bufferedamountlow`). */
  pump(peerId?: number): void {
    for (const p of this.#peers.values()) {
      if (peerId === undefined || p.id === peerId) this.#pumpPeer(p);
    }
    this.#expire();
  }

  /** Stops: no more timers, sends or callbacks. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#refill);
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#peers.clear();
  }

  // ---------------------------------------------------------------- receiving

  #onFiles(p: PeerState, list: FileOffer[]): void {
    const old = p.offers;
    p.offers = new Map();
    for (const o of list) {
      const f = this.#files.get(o.id) ??
        this.#newFile(o.id, cleanFileName(o.name), o.sizeBytes, o.chunks, false);
      if (!f) {
        this.#log(`peer ${p.id}: too many files known; ignoring ${short(o.id)}`);
        continue;
      }
      // Before the manifest, sizes are only claims: keep every offer, and drop the ones
      // that disagree with the manifest once it is verified (#setManifest).
      if (f.manifest && (f.chunks !== o.chunks || f.sizeBytes !== o.sizeBytes)) {
        this.#log(`peer ${p.id}: offers ${short(o.id)} with another size; ignored`);
        continue;
      }
      const have = decodeBitfield(o.have, o.chunks)!;
      p.offers.set(o.id, { chunks: o.chunks, have, count: popcount(have) });
      f.manifestRefused.delete(p.id);
    }
    for (const id of old.keys()) {
      if (p.offers.has(id)) continue;
      const f = this.#files.get(id);
      if (!f) continue;
      for (const [i, r] of f.requests) if (r.peer === p.id) this.#clearRequest(f, i);
      if (f.manifestReq?.peer === p.id) f.manifestReq = null;
    }
    this.#notify();
    this.#kick();
  }

  #onHave(p: PeerState, file: string, index: number): void {
    const o = p.offers.get(file);
    if (!o || index >= o.chunks || getBit(o.have, index)) return;
    setBit(o.have, index);
    o.count++;
    this.#kick();
  }

  #onGetManifest(p: PeerState, file: string): void {
    const f = this.#files.get(file);
    if (!f?.manifest || !this.#offered(f)) return this.#sendText(p, { type: "nope", file });
    const m = f.manifest;
    this.#sendText(p, {
      type: "manifest",
      file,
      name: f.name,
      sizeBytes: m.sizeBytes,
      chunkBytes: m.chunkBytes,
      hashes: bytesToBase64(m.hashes),
    });
  }

  #onManifest(p: PeerState, m: Extract<WireText, { type: "manifest" }>): void {
    const f = this.#files.get(m.file);
    // Only while one is asked for (from anyone): an unasked manifest would hold bytes past
    // the cap on files being fetched.
    if (!f || f.manifest || !f.enabled || !f.manifestReq) return;
    if (f.manifestReq.peer === p.id) f.manifestReq = null;
    const hashes = base64ToBytes(m.hashes);
    const manifest: Manifest = {
      id: m.file,
      name: f.name,
      sizeBytes: m.sizeBytes,
      chunkBytes: m.chunkBytes,
      hashes: hashes ?? new Uint8Array(0),
    };
    const problem = manifestProblem(manifest);
    if (problem) {
      this.#log(`peer ${p.id}: bad manifest for ${short(f.id)} (${problem}); asking another`);
      f.distrusted.add(p.id);
      p.stats.chunksRejected++;
      this.#strike(p);
      this.#kick();
      return;
    }
    this.#setManifest(f, manifest);
    this.#log(`got the manifest of “${f.name}” from peer ${p.id}: ${f.chunks} chunks`);
    this.#notify();
    this.#kick();
  }

  #onGet(p: PeerState, file: string, index: number): void {
    const f = this.#files.get(file);
    if (
      !f || !this.#offered(f) || index >= f.chunks || !getBit(f.have!, index) ||
      p.queue.length >= MAX_QUEUED_PER_PEER
    ) {
      return this.#sendText(p, { type: "nope", file, index });
    }
    if (p.queue.some((q) => q.file === file && q.index === index)) return;
    p.queue.push({ file, index });
    this.#pumpPeer(p);
  }

  #onNope(p: PeerState, file: string, index?: number): void {
    const f = this.#files.get(file);
    if (!f) return;
    if (index === undefined) {
      f.manifestRefused.add(p.id);
      if (f.manifestReq?.peer === p.id) f.manifestReq = null;
    } else {
      const o = p.offers.get(file);
      if (o && index < o.chunks && getBit(o.have, index)) {
        setBit(o.have, index, false);
        o.count--;
      }
      this.#settle(f, index, p);
    }
    this.#kick();
  }

  /** `p` answered chunk `index` (a chunk or a `nope`): its request, if it held it, is done. */
  #settle(f: FileState, index: number, p: PeerState): void {
    const req = f.requests.get(index);
    if (req?.peer !== p.id) return;
    this.#answered(p, req);
    this.#clearRequest(f, index);
  }

  /** A request of mine answered: slow answers shrink the peer's share, prompt ones grow it. */
  #answered(p: PeerState, req: Request): void {
    const now = Date.now(), waited = now - req.sentMs;
    if (waited > this.#timeoutMs / 2) this.#shrink(p, now);
    else if (waited < this.#timeoutMs / 4) p.cap = Math.min(this.#maxInFlight, p.cap + 1);
  }

  /** Halves a slow peer's share of requests, at most once a timeout. */
  #shrink(p: PeerState, now: number): void {
    if (now - p.cutMs < this.#timeoutMs) return;
    p.cap = Math.max(1, p.cap >> 1);
    p.cutMs = now;
  }

  #onChunk(p: PeerState, file: string, index: number, bytes: Uint8Array): void {
    p.stats.chunksReceived++;
    p.stats.bytesReceived += bytes.byteLength;
    const f = this.#files.get(file);
    if (!f?.manifest || !f.have || !f.data || !f.enabled || index >= f.chunks) {
      this.#log(`peer ${p.id}: unexpected chunk ${index} of ${short(file)}; ignored`);
      return;
    }
    this.#settle(f, index, p);
    if (getBit(f.have, index)) {
      p.stats.duplicates++;
      this.#kick();
      return;
    }
    if (!verifyChunk(f.manifest, index, bytes)) {
      p.stats.chunksRejected++;
      let bad = f.bad.get(index);
      if (!bad) f.bad.set(index, bad = new Set());
      bad.add(p.id);
      this.#log(`peer ${p.id}: chunk ${index} of “${f.name}” failed its hash; dropped`);
      this.#strike(p);
      this.#kick();
      return;
    }
    const { start } = chunkRange(f.manifest, index);
    f.data.set(bytes, start);
    setBit(f.have, index);
    f.haveCount++;
    f.bad.delete(index);
    f.slow.delete(index);
    const other = f.requests.get(index);
    if (other) {
      // Arrived late from a peer we had given up on: the re-request is moot.
      const q = this.#peers.get(other.peer);
      this.#clearRequest(f, index);
      if (q) this.#sendText(q, { type: "cancel", file, index });
    }
    if (f.haveCount === 1) {
      this.#sendFiles(); // a new offer: the list carries the bit
    } else {
      const text = encodeText({ type: "have", file, index });
      for (const q of this.#peers.values()) {
        const o = q.offers.get(file);
        if (!o || !getBit(o.have, index)) this.#send(q, text);
      }
    }
    if (this.#complete(f)) {
      f.bad.clear();
      f.slow.clear();
      this.#log(`“${f.name}” is complete`);
      try {
        this.#o.onComplete?.(f.id);
      } catch (e) {
        this.#log(`onComplete threw: ${e}`);
      }
    }
    this.#notify();
    this.#kick();
  }

  /** One more bad chunk or manifest from `p`; at the limit, nothing more is asked of it. */
  #strike(p: PeerState): void {
    p.bad++;
    if (p.bad !== MAX_BAD_CHUNKS) return;
    this.#log(`peer ${p.id}: ${p.bad} bad chunks; not asking it for anything any more`);
    for (const f of this.#files.values()) {
      for (const [i, r] of f.requests) {
        if (r.peer !== p.id) continue;
        this.#clearRequest(f, i);
        this.#sendText(p, { type: "cancel", file: f.id, index: i });
      }
      if (f.manifestReq?.peer === p.id) f.manifestReq = null;
    }
    this.#notify();
  }

  // ---------------------------------------------------------------- sending

  #pumpPeer(p: PeerState): void {
    while (p.queue.length > 0 && p.channel.bufferedAmount <= SEND_HIGH_WATER) {
      const { file, index } = p.queue.shift()!;
      const f = this.#files.get(file);
      if (!f || !this.#offered(f) || !getBit(f.have!, index)) {
        this.#sendText(p, { type: "nope", file, index });
        continue;
      }
      const { start, end } = chunkRange(f.manifest!, index);
      if (!this.#uplinkAllows(end - start)) {
        p.queue.unshift({ file, index });
        return;
      }
      let bytes = f.data!.subarray(start, end);
      if (this.#o.tamper) bytes = this.#o.tamper(file, index, bytes.slice());
      if (!this.#send(p, encodeChunk(file, index, bytes))) return;
      p.stats.chunksSent++;
      p.stats.bytesSent += bytes.byteLength;
    }
  }

  /** Takes `bytes` from the uplink cap's bucket; false (and a pump scheduled) when empty. */
  #uplinkAllows(bytes: number): boolean {
    const rate = this.#o.uplinkBytesPerSec;
    if (!rate) return true;
    const now = performance.now();
    this.#tokens = Math.min(2 * CHUNK_BYTES, this.#tokens + (now - this.#filledMs) * rate / 1000);
    this.#filledMs = now;
    if (this.#tokens >= bytes) {
      this.#tokens -= bytes;
      return true;
    }
    this.#refill ??= setTimeout(() => {
      this.#refill = undefined;
      this.pump();
    }, Math.ceil((bytes - this.#tokens) * 1000 / rate));
    return false;
  }

  #send(p: PeerState, data: string | Uint8Array<ArrayBuffer>): boolean {
    try {
      p.channel.send(data);
      return true;
    } catch (e) {
      this.#log(`peer ${p.id}: send failed: ${e instanceof Error ? e.message : e}`);
      return false;
    }
  }

  #sendText(p: PeerState, m: WireText): void {
    this.#send(p, encodeText(m));
  }

  #filesMessage(): string {
    const files: FileOffer[] = [];
    const all = [...this.#files.values()].filter((f) => this.#offered(f));
    all.sort((a, b) => Number(b.mine) - Number(a.mine));
    for (const f of all.slice(0, MAX_OFFERS)) {
      files.push({
        id: f.id,
        name: f.name,
        sizeBytes: f.sizeBytes,
        chunks: f.chunks,
        have: bytesToBase64(f.have!),
      });
    }
    return encodeText({ type: "files", files });
  }

  #sendFiles(): void {
    if (this.#peers.size === 0) return;
    const text = this.#filesMessage();
    for (const p of this.#peers.values()) this.#send(p, text);
  }

  // ---------------------------------------------------------------- fetching

  /** Runs the scheduler once, after whatever else this microtask does. */
  #kick(): void {
    if (this.#scheduleQueued || this.#closed) return;
    this.#scheduleQueued = true;
    queueMicrotask(() => {
      this.#scheduleQueued = false;
      if (!this.#closed) this.#schedule();
    });
  }

  #schedule(): void {
    const files = [...this.#files.values()].filter((f) => f.enabled && !this.#complete(f));
    files.sort((a, b) => Number(b.id === this.#priority) - Number(a.id === this.#priority));
    // What files already being fetched hold; a new one starts (its manifest is asked for,
    // then its bytes are held) only within the cap, unless it is the wanted one or the only one.
    let held = files.reduce((n, f) => n + (f.manifest || f.manifestReq ? f.sizeBytes : 0), 0);
    for (const f of files) {
      if (f.manifest) this.#askChunks(f);
      else if (f.manifestReq) continue;
      else if (f.id === this.#priority || held === 0 || held + f.sizeBytes <= this.#maxIncomplete) {
        this.#askManifest(f);
        if (f.manifestReq) held += f.sizeBytes;
      }
    }
    this.#arm();
  }

  #usable(p: PeerState): boolean {
    return p.bad < MAX_BAD_CHUNKS;
  }

  #askManifest(f: FileState): void {
    if (f.manifestReq) return;
    let best: PeerState | null = null;
    let bestScore = Infinity;
    for (const p of this.#peers.values()) {
      if (!p.offers.has(f.id) || !this.#usable(p) || f.manifestRefused.has(p.id)) continue;
      if (f.distrusted.has(p.id)) continue;
      const score = (f.manifestSlow.has(p.id) ? 100 : 0) + p.inFlight + Math.random();
      if (score < bestScore) [best, bestScore] = [p, score];
    }
    if (!best) return;
    f.manifestReq = { peer: best.id, deadline: Date.now() + this.#timeoutMs, sentMs: Date.now() };
    this.#sendText(best, { type: "getManifest", file: f.id });
  }

  #askChunks(f: FileState): void {
    const sources: { p: PeerState; o: Offer }[] = [];
    for (const p of this.#peers.values()) {
      const o = p.offers.get(f.id);
      if (o && o.count > 0 && this.#usable(p) && !f.distrusted.has(p.id)) sources.push({ p, o });
    }
    if (!sources.some((s) => s.p.inFlight < s.p.cap)) return;
    // Rarest first: count the sources of every chunk still to request.
    const wanted: { index: number; avail: number }[] = [];
    for (const index of f.order) {
      if (getBit(f.have!, index) || f.requests.has(index)) continue;
      const bad = f.bad.get(index);
      let avail = 0;
      for (const s of sources) if (getBit(s.o.have, index) && !bad?.has(s.p.id)) avail++;
      if (avail > 0) wanted.push({ index, avail });
    }
    wanted.sort((a, b) => a.avail - b.avail); // stable: ties keep the random order
    const sentMs = Date.now(), deadline = sentMs + this.#timeoutMs;
    for (const { index } of wanted) {
      const bad = f.bad.get(index);
      const slow = f.slow.get(index);
      let best: PeerState | null = null;
      let bestScore = Infinity;
      let room = false;
      for (const { p, o } of sources) {
        if (p.inFlight >= p.cap) continue;
        room = true;
        if (!getBit(o.have, index) || bad?.has(p.id)) continue;
        const score = p.inFlight + (slow?.has(p.id) ? 1000 : 0) + Math.random() * 0.5;
        if (score < bestScore) [best, bestScore] = [p, score];
      }
      if (!room) break;
      if (!best) continue;
      f.requests.set(index, { peer: best.id, deadline, sentMs });
      if (best.inFlight === 0) best.livelyMs = sentMs;
      best.inFlight++;
      this.#sendText(best, { type: "get", file: f.id, index });
    }
  }

  #clearRequest(f: FileState, index: number): void {
    const r = f.requests.get(index);
    if (!r) return;
    f.requests.delete(index);
    const p = this.#peers.get(r.peer);
    if (p) p.inFlight--;
  }

  /** Forgets every request for `f` (telling the peers, when `cancel`). */
  #dropRequests(f: FileState, cancel: boolean): void {
    for (const [index, r] of [...f.requests]) {
      const p = this.#peers.get(r.peer);
      this.#clearRequest(f, index);
      if (p && cancel) this.#sendText(p, { type: "cancel", file: f.id, index });
    }
    f.manifestReq = null;
  }

  /** Keeps one timer for the earliest request deadline. */
  #arm(): void {
    if (this.#closed) return;
    let next = Infinity;
    for (const f of this.#files.values()) {
      if (f.manifestReq) next = Math.min(next, f.manifestReq.deadline);
      for (const r of f.requests.values()) next = Math.min(next, r.deadline);
    }
    if (next === Infinity || (this.#timer !== null && this.#timerAt <= next)) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(() => {
      const late = Date.now() - next - 5;
      this.#timer = null;
      this.#timerAt = Infinity;
      if (late > STALL_MS) this.#deaf(late);
      else this.#expire();
      this.#arm();
    }, Math.max(0, next - Date.now()) + 5);
  }

  /**
   * This member stalled for `ms` (a busy device, a tab held in the background): what its
   * peers sent meanwhile is still waiting to be read, and this timer ran first. Nobody was
   * silent to a member that was not listening, so every wait is extended by the stall, and
   * the messages are read before anything lapses.
   */
  #deaf(ms: number): void {
    for (const f of this.#files.values()) {
      if (f.manifestReq) f.manifestReq.deadline += ms + STALL_MS;
      for (const r of f.requests.values()) {
        r.deadline += ms + STALL_MS;
        r.sentMs += ms;
      }
    }
    const now = Date.now();
    for (const p of this.#peers.values()) p.livelyMs = Math.min(now, p.livelyMs + ms);
  }

  /** Requests past their deadline go elsewhere. */
  #expire(): void {
    if (this.#closed) return;
    // The timer is overdue: this member stalled, and its timer will say by how much (#deaf).
    if (this.#timer !== null && Date.now() - this.#timerAt > STALL_MS) return;
    const now = Date.now();
    let any = false;
    const lapsed = new Map<number, number>();
    for (const f of this.#files.values()) {
      if (f.manifestReq && f.manifestReq.deadline <= now) {
        this.#log(`peer ${f.manifestReq.peer}: no manifest of ${short(f.id)} in time`);
        f.manifestSlow.add(f.manifestReq.peer);
        f.manifestReq = null;
        any = true;
      }
      for (const [index, r] of [...f.requests]) {
        if (r.deadline > now) continue;
        // A peer still answering is busy, not gone: its replies queue behind everyone else's
        // (a seeder serving nineteen members), and asking elsewhere would fetch the chunk
        // twice. The request lapses once the peer has answered nothing for the timeout, or
        // after MAX_WAIT_TIMEOUTS of them in all (a peer that skips one request).
        const p = this.#peers.get(r.peer);
        const lively = p ? p.livelyMs + this.#timeoutMs : 0;
        const last = r.sentMs + MAX_WAIT_TIMEOUTS * this.#timeoutMs;
        if (lively > now && last > now) {
          r.deadline = Math.min(lively, last);
          continue;
        }
        let slow = f.slow.get(index);
        if (!slow) f.slow.set(index, slow = new Set());
        slow.add(r.peer);
        this.#clearRequest(f, index);
        if (p) {
          this.#sendText(p, { type: "cancel", file: f.id, index });
          this.#shrink(p, now);
        }
        lapsed.set(r.peer, (lapsed.get(r.peer) ?? 0) + 1);
        any = true;
      }
    }
    for (const [id, n] of lapsed) {
      const p = this.#peers.get(id);
      const quiet = p ? `${((now - p.livelyMs) / 1000).toFixed(1)} s without an answer` : "gone";
      this.#log(`peer ${id}: ${n} chunk request(s) lapsed (${quiet}); asking elsewhere`);
    }
    if (any) this.#kick();
  }

  // ---------------------------------------------------------------- state

  #newFile(
    id: string,
    name: string,
    sizeBytes: number,
    chunks: number,
    force: boolean,
  ): FileState | null {
    if (this.#files.size >= MAX_KNOWN_FILES) this.#prune();
    if (this.#files.size >= MAX_KNOWN_FILES && !force) return null;
    const f: FileState = {
      id,
      name,
      sizeBytes,
      chunks,
      mine: false,
      enabled: this.#prefs.get(id) ?? this.#o.autoFetch ?? true,
      manifest: null,
      data: null,
      have: null,
      haveCount: 0,
      order: [],
      requests: new Map(),
      bad: new Map(),
      slow: new Map(),
      manifestReq: null,
      manifestRefused: new Set(),
      distrusted: new Set(),
      manifestSlow: new Set(),
    };
    this.#files.set(id, f);
    return f;
  }

  /** Forgets files nobody offers and of which nothing is here. */
  #prune(): void {
    for (const f of [...this.#files.values()]) {
      if (!f.mine && f.haveCount === 0 && this.#sources(f) === 0) this.#files.delete(f.id);
    }
  }

  #setManifest(f: FileState, m: Manifest): void {
    f.manifest = m;
    f.sizeBytes = m.sizeBytes;
    f.chunks = chunkCount(m);
    f.data = new Uint8Array(m.sizeBytes);
    f.have = new Uint8Array(bitfieldBytes(f.chunks));
    f.haveCount = 0;
    f.order = shuffled(f.chunks);
    f.manifestReq = null;
    for (const p of this.#peers.values()) {
      const o = p.offers.get(f.id);
      if (o && o.chunks !== f.chunks) p.offers.delete(f.id);
    }
  }

  #offered(f: FileState): boolean {
    return f.enabled && f.haveCount > 0;
  }

  #complete(f: FileState): boolean {
    return f.manifest !== null && f.haveCount === f.chunks;
  }

  #sources(f: FileState): number {
    let n = 0;
    for (const p of this.#peers.values()) {
      if (p.offers.has(f.id) && this.#usable(p) && !f.distrusted.has(p.id)) n++;
    }
    return n;
  }

  #notify(): void {
    if (this.#notifyQueued || this.#closed) return;
    this.#notifyQueued = true;
    queueMicrotask(() => {
      this.#notifyQueued = false;
      if (!this.#closed) this.#o.onChange();
    });
  }

  #log(msg: string): void {
    this.#o.log?.(msg);
  }
}

function short(id: string): string {
  return id.slice(0, 8);
}
