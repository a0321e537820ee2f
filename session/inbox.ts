/**
 * The host's inbox of song requests. A peer offers a file (name, tags, size, SHA-256); the host
 * accepts or rejects it. Accepting gives the requester a one-time token for
 * `PUT /requests/{token}`; the upload is written only under the inbox's own folder, named by
 * its verified SHA-256, and never grows past the size the peer declared.
 */
import { MAX_FILE_BYTES } from "../audio/mp3_scan.ts";
import { tooBig } from "../audio/track_file.ts";
import type { EngineEvent, InboxEntry } from "./commands.ts";
import {
  type HostToPeer,
  MAX_PENDING_REQUESTS,
  type RequestMsg,
  type RequestOutcome,
} from "./protocol.ts";
import { sha256Hex } from "../net/transfer.ts";

export interface InboxItem extends InboxEntry {
  peerId: number;
  requestId: number;
  sha256: string;
  token?: string;
}

export class RequestError extends Error {
  override name = "RequestError";
  constructor(message: string, readonly tooLarge = false) {
    super(message);
  }
}

/** What the inbox needs from the host engine. */
export interface InboxHooks {
  /** Sends to a peer if it is still connected. */
  send(peerId: number, m: HostToPeer): void;
  emit(e: EngineEvent): void;
  isQueued(sha256: string): boolean;
  /** Validates and queues a received file: null, or the sentence that refuses it. */
  add(path: string, opts: { fileName: string; requestedBy: string }): Promise<string | null>;
}

export class Inbox {
  readonly #items = new Map<number, InboxItem>();
  #nextId = 1;

  constructor(readonly dir: string, readonly hooks: InboxHooks) {}

  list(): InboxEntry[] {
    return [...this.#items.values()].map((i) => ({
      id: i.id,
      peer: i.peer,
      fileName: i.fileName,
      title: i.title,
      artist: i.artist,
      sizeBytes: i.sizeBytes,
      state: i.state,
    }));
  }

  // ---------- what the host engine calls ----------

  /** A peer's `request` message: filed in the inbox, or refused with a sentence. */
  offer(peer: { id: number; name: string }, m: RequestMsg): void {
    const r = this.#file(peer, m);
    if (typeof r === "string") {
      this.hooks.send(peer.id, {
        type: "requestResult",
        requestId: m.requestId,
        outcome: "refused",
        reason: r,
      });
      this.hooks.emit({
        type: "notice",
        level: "warn",
        message: `Refused a request from ${peer.name}: ${r}`,
      });
      return;
    }
    this.#event(r, "waiting");
    this.hooks.send(peer.id, { type: "requestResult", requestId: m.requestId, outcome: "waiting" });
  }

  /** The host's `accept ID`: the requester gets a one-time upload address. */
  accept(id: number): void {
    const r = this.#accept(id);
    if (typeof r === "string") return this.hooks.emit({ type: "error", message: r });
    this.hooks.send(r.peerId, { type: "upload", requestId: r.requestId, token: r.token! });
    this.#event(r, "uploading");
  }

  /** The host's `reject ID`: discarded, and the requester is told. */
  reject(id: number): void {
    const r = this.#take(id);
    if (typeof r === "string") return this.hooks.emit({ type: "error", message: r });
    this.#tell(r, "rejected", `The host declined "${r.fileName}".`);
    this.#event(r, "rejected");
  }

  /** A peer left: its requests are withdrawn. */
  peerLeft(peerId: number, name: string): void {
    for (const i of [...this.#items.values()].filter((i) => i.peerId === peerId)) {
      this.#items.delete(i.id);
      this.#event(i, "withdrawn", `${name} left the jam.`);
    }
  }

  /** `PUT /requests/{token}`: receives, checks and queues an accepted request's file. */
  async upload(
    token: string,
    body: ReadableStream<Uint8Array> | null,
  ): Promise<{ status: 200 | 400 | 404 | 413; text: string }> {
    const item = this.#byToken(token);
    if (!item || item.state !== "uploading") {
      await body?.cancel().catch(() => {});
      return { status: 404, text: "No accepted request has this address." };
    }
    this.#items.delete(item.id); // one upload per token, whatever happens next
    let path: string;
    try {
      path = await this.#receive(item, body);
    } catch (e) {
      const why = e instanceof RequestError ? e.message : String(e);
      const reason = `Could not receive "${item.fileName}" from ${item.peer}: ${why}.`;
      this.hooks.emit({ type: "error", message: reason });
      this.#tell(item, "failed", reason);
      this.#event(item, "failed", reason);
      return { status: e instanceof RequestError && e.tooLarge ? 413 : 400, text: reason };
    }
    const bad = await this.hooks.add(path, { fileName: item.fileName, requestedBy: item.peer });
    if (bad) {
      await Deno.remove(path).catch(() => {});
      this.#tell(item, "refused", bad);
      this.#event(item, "refused", bad);
      return { status: 400, text: bad };
    }
    this.#tell(item, "queued");
    this.#event(item, "queued");
    return { status: 200, text: `"${item.fileName}" is queued.` };
  }

  // ---------- the inbox itself ----------

  #tell(item: InboxItem, outcome: RequestOutcome, reason?: string) {
    this.hooks.send(item.peerId, {
      type: "requestResult",
      requestId: item.requestId,
      outcome,
      ...(reason ? { reason } : {}),
    });
  }

  #event(item: InboxItem, state: string, reason?: string) {
    this.hooks.emit({
      type: "request",
      id: item.id,
      peer: item.peer,
      fileName: item.fileName,
      title: item.title,
      artist: item.artist,
      sizeBytes: item.sizeBytes,
      state,
      ...(reason ? { reason } : {}),
    });
    // The whole inbox too: a UI that connects later shows it from the last one.
    this.hooks.emit({ type: "inbox", requests: this.list() });
  }

  /** Files a request, or returns the sentence that refuses it. */
  #file(peer: { id: number; name: string }, m: RequestMsg): InboxItem | string {
    const name = `"${m.fileName}"`;
    if (m.sizeBytes > MAX_FILE_BYTES) return `Cannot request ${name}: ${tooBig(m.sizeBytes)}.`;
    if (m.sizeBytes === 0) return `Cannot request ${name}: the file is empty.`;
    if (this.hooks.isQueued(m.sha256)) return `${name} is already in the queue.`;
    const mine = [...this.#items.values()].filter((i) => i.peerId === peer.id);
    if (mine.some((i) => i.sha256 === m.sha256)) return `${name} is already waiting in the inbox.`;
    if (mine.length >= MAX_PENDING_REQUESTS) {
      return `Cannot request ${name}: you already have ${MAX_PENDING_REQUESTS} requests waiting for the host.`;
    }
    const item: InboxItem = {
      id: this.#nextId++,
      peer: peer.name,
      peerId: peer.id,
      requestId: m.requestId,
      fileName: m.fileName,
      title: m.title || m.fileName.replace(/\.mp3$/i, ""),
      artist: m.artist,
      sizeBytes: m.sizeBytes,
      sha256: m.sha256,
      state: "waiting",
    };
    this.#items.set(item.id, item);
    return item;
  }

  /** Marks a waiting request accepted and returns it with the upload token for its peer. */
  #accept(id: number): InboxItem | string {
    const item = this.#items.get(id);
    if (!item) return this.#noSuch(id);
    if (item.state !== "waiting") return `Request ${id} is already being uploaded.`;
    const raw = crypto.getRandomValues(new Uint8Array(16));
    item.token = [...raw].map((b) => b.toString(16).padStart(2, "0")).join("");
    item.state = "uploading";
    return item;
  }

  /** Removes a request; the sentence when there is none. */
  #take(id: number): InboxItem | string {
    const item = this.#items.get(id);
    if (!item) return this.#noSuch(id);
    this.#items.delete(id);
    return item;
  }

  #byToken(token: string): InboxItem | undefined {
    if (!/^[0-9a-f]{32}$/.test(token)) return undefined;
    for (const i of this.#items.values()) if (i.token === token) return i;
    return undefined;
  }

  /**
   * Writes an accepted request's upload to `{dir}/{sha256}.mp3`, refusing anything longer than
   * declared or with another checksum. Throws {@link RequestError} with the reason.
   */
  async #receive(item: InboxItem, body: ReadableStream<Uint8Array> | null): Promise<string> {
    if (!body) throw new RequestError("the upload was empty");
    await Deno.mkdir(this.dir, { recursive: true });
    const part = `${this.dir}/${item.sha256}.upload`;
    const final = `${this.dir}/${item.sha256}.mp3`;
    const file = await Deno.open(part, { write: true, create: true, truncate: true });
    let have = 0;
    try {
      try {
        for await (const chunk of body) {
          have += chunk.length;
          if (have > item.sizeBytes) {
            throw new RequestError(
              `the upload is larger than the ${item.sizeBytes} bytes announced`,
              true,
            );
          }
          let done = 0;
          while (done < chunk.length) done += await file.write(chunk.subarray(done));
        }
      } finally {
        file.close();
      }
      if (have < item.sizeBytes) {
        throw new RequestError(`the upload stopped after ${have} of ${item.sizeBytes} bytes`);
      }
      const got = await sha256Hex(await Deno.readFile(part));
      if (got !== item.sha256) {
        throw new RequestError("the uploaded file's checksum does not match");
      }
      await Deno.rename(part, final);
      return final;
    } catch (e) {
      await Deno.remove(part).catch(() => {});
      if (e instanceof RequestError) throw e;
      throw new RequestError(`the upload failed: ${(e as Error).message}`);
    }
  }

  #noSuch(id: number): string {
    const ids = [...this.#items.keys()];
    return `There is no request ${id} in the inbox${
      ids.length ? ` (waiting: ${ids.join(", ")})` : "; it is empty"
    }.`;
  }
}
