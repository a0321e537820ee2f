import { Hono } from "hono";
import { upgradeWebSocket } from "hono/deno";
import { parseRange } from "../net/transfer.ts";
import { MAX_MESSAGE_BYTES } from "../session/protocol.ts";

/** What the HTTP server needs from the session: which files are shared, and WS handlers. */
export interface ServerHooks {
  /** Path of a shared track by SHA-256, or undefined: nothing else on disk is reachable. */
  trackPath(id: string): string | undefined;
  /** Cover picture of a queued track, if it has one. */
  cover(id: string): { mime: string; bytes: Uint8Array } | undefined;
  /** An accepted song request's file arriving; answers with a status and a sentence. */
  upload(
    token: string,
    body: ReadableStream<Uint8Array> | null,
  ): Promise<{ status: 200 | 400 | 404 | 413; text: string }>;
  onSocket(
    ws: SocketLike,
    remoteAddr: string,
  ): { onMessage(data: string | Uint8Array): void; onClose(): void };
}

export interface SocketLike {
  send(text: string): void;
  close(code?: number, reason?: string): void;
}

export function createApp(hooks: ServerHooks): Hono {
  const app = new Hono();
  app.get("/", (c) => c.text("PhaseLock host. Browser peers arrive in a later version.\n"));
  app.get(
    "/ws",
    upgradeWebSocket((c) => {
      let handler: ReturnType<ServerHooks["onSocket"]> | null = null;
      const info = (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr;
      return {
        onOpen(_e, ws) {
          handler = hooks.onSocket({
            send: (t) => ws.readyState === 1 && ws.send(t),
            close: (code, reason) => ws.close(code, reason),
          }, info?.hostname ?? "");
        },
        onMessage(e, ws) {
          const d = e.data;
          const size = typeof d === "string" ? d.length : (d as ArrayBuffer).byteLength ?? 0;
          // A string is at least as many UTF-8 bytes as it has UTF-16 units: over the cap either way.
          if (size > MAX_MESSAGE_BYTES) {
            ws.close(1009, "message too large");
            return;
          }
          handler?.onMessage(typeof d === "string" ? d : new Uint8Array(d as ArrayBuffer));
        },
        onClose() {
          handler?.onClose();
          handler = null;
        },
      };
    }),
  );
  app.get("/covers/:id", (c) => {
    const id = c.req.param("id");
    const cover = /^[0-9a-f]{64}$/.test(id) ? hooks.cover(id) : undefined;
    if (!cover) return c.text("No such cover.\n", 404);
    return c.body(cover.bytes.slice().buffer, 200, {
      "Content-Type": cover.mime,
      "Cache-Control": "max-age=86400, immutable",
    });
  });
  app.put("/requests/:token", async (c) => {
    const r = await hooks.upload(c.req.param("token"), c.req.raw.body);
    return c.text(r.text + "\n", r.status);
  });
  app.get("/tracks/:id", async (c) => {
    const id = c.req.param("id");
    const path = /^[0-9a-f]{64}$/.test(id) ? hooks.trackPath(id) : undefined;
    if (!path) return c.text("No such track.\n", 404);
    const file = await Deno.open(path, { read: true });
    const size = (await file.stat()).size;
    const range = parseRange(c.req.header("Range"), size);
    if (range === "invalid") {
      file.close();
      return c.body(null, 416, { "Content-Range": `bytes */${size}` });
    }
    const start = range?.start ?? 0, end = range?.end ?? size - 1;
    await file.seek(start, Deno.SeekMode.Start);
    const body = limit(file.readable, end - start + 1);
    const headers: Record<string, string> = {
      "Content-Type": "audio/mpeg",
      "Content-Length": String(end - start + 1),
      "Accept-Ranges": "bytes",
    };
    if (range) headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
    return c.body(body, range ? 206 : 200, headers);
  });
  return app;
}

function limit(src: ReadableStream<Uint8Array>, n: number): ReadableStream<Uint8Array> {
  let left = n;
  return src.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        if (left <= 0) return;
        const part = chunk.subarray(0, left);
        left -= part.length;
        ctl.enqueue(part);
        if (left <= 0) ctl.terminate();
      },
    }),
  );
}
