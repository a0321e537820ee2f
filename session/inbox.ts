/**
 * The host's inbox of song requests. A peer offers a file (name, tags, size, SHA-256); the host
 * accepts or rejects it. Accepting gives the requester a one-time token for
 * `PUT /requests/{token}`; the upload is written only under the inbox's own folder, named by
 * its verified SHA-256, and never grows past the size the peer declared.
 */
import { MAX_FILE_BYTES } from "../audio/mp3_scan.ts";
import { tooBig } from "../audio/track_file.ts";
import type { InboxEntry } from "./commands.ts";
import { MAX_PENDING_REQUESTS, type RequestMsg } from "./protocol.ts";
import { sha256Hex } from "../net/transfer.ts";

export interface InboxItem extends InboxEntry {
  peerId: number;
  requestId: number;
  sha256: string;
  token?: string;
}

export class RequestError extends Error {
  override name = "RequestError";
}

export class Inbox {
  readonly #items = new Map<number, InboxItem>();
  #nextId = 1;

  constructor(readonly dir: string) {}

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

  get(id: number): InboxItem | undefined {
    return this.#items.get(id);
  }

  /** Files a request, or returns the sentence that refuses it. */
  offer(
    peer: { id: number; name: string },
    m: RequestMsg,
    alreadyQueued: (sha: string) => boolean,
  ): InboxItem | string {
    const name = `"${m.fileName}"`;
    if (m.sizeBytes > MAX_FILE_BYTES) return `Cannot request ${name}: ${tooBig(m.sizeBytes)}.`;
    if (m.sizeBytes === 0) return `Cannot request ${name}: the file is empty.`;
    if (alreadyQueued(m.sha256)) return `${name} is already in the queue.`;
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

  /** Marks a waiting request accepted and returns the upload token for its peer. */
  accept(id: number): InboxItem | string {
    const item = this.#items.get(id);
    if (!item) return this.#noSuch(id);
    if (item.state !== "waiting") return `Request ${id} is already being uploaded.`;
    const raw = crypto.getRandomValues(new Uint8Array(16));
    item.token = [...raw].map((b) => b.toString(16).padStart(2, "0")).join("");
    item.state = "uploading";
    return item;
  }

  /** Removes a request (rejected, withdrawn, finished); the sentence when there is none. */
  take(id: number): InboxItem | string {
    const item = this.#items.get(id);
    if (!item) return this.#noSuch(id);
    this.#items.delete(id);
    return item;
  }

  /** Removes every request of a peer that left. */
  dropPeer(peerId: number): InboxItem[] {
    const gone = [...this.#items.values()].filter((i) => i.peerId === peerId);
    for (const i of gone) this.#items.delete(i.id);
    return gone;
  }

  byToken(token: string): InboxItem | undefined {
    if (!/^[0-9a-f]{32}$/.test(token)) return undefined;
    for (const i of this.#items.values()) if (i.token === token) return i;
    return undefined;
  }

  /**
   * Writes an accepted request's upload to `{dir}/{sha256}.mp3`, refusing anything longer than
   * declared or with another checksum. Throws {@link RequestError} with the reason.
   */
  async receive(item: InboxItem, body: ReadableStream<Uint8Array> | null): Promise<string> {
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
