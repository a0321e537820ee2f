/**
 * The host's HTTP server (Hono): the WebSocket control channel at `/ws`, shared track files,
 * covers and song-request uploads. A runtime edge: the session logic behind the hooks sees only
 * {@link SocketLike}s and streams.
 */
import { type Context, Hono } from "hono";
import { ICON_SVG } from "./control.ts";
import { parseRange } from "../net/transfer.ts";
import { MAX_MESSAGE_BYTES } from "../session/protocol.ts";

/**
 * A control connection that has not been admitted (its `hello` accepted) this long after the
 * upgrade is closed with 1008 "hello timeout". A real peer says hello within milliseconds of
 * connecting, even over a WAN; without a limit idle sockets stayed open forever (300 of 300
 * were still open after 6 s).
 */
export const HELLO_TIMEOUT_MS = 5000;

/**
 * Connections that may wait for admission at once; further upgrade attempts get HTTP 503 with a
 * sentence. Far above what a jam of five peers needs, even with all of them reconnecting at once.
 */
export const MAX_UNADMITTED_SOCKETS = 32;

/** The browser peer's page: HTML, style, the engine bundle and its decoder worker. */
export interface PeerPageAssets {
  html: string;
  css: string;
  js: string;
  worker: string;
}

/** What the HTTP server needs from the session: which files are shared, and WS handlers. */
export interface ServerHooks {
  /** The page phones and laptops open to join; absent: `/` says where to get PhaseLock. */
  peerPage?(): Promise<PeerPageAssets>;
  /** Path of a shared track by SHA-256, or undefined: nothing else on disk is reachable. */
  trackPath(id: string): string | undefined;
  /** Cover picture of a queued track, if it has one. */
  cover(id: string): { mime: string; bytes: Uint8Array } | undefined;
  /** An accepted song request's file arriving; answers with a status and a sentence. */
  upload(
    token: string,
    body: ReadableStream<Uint8Array> | null,
  ): Promise<{ status: 200 | 400 | 404 | 413; text: string }>;
  /** A control connection opened; the handler gets its messages and its close. */
  onSocket(ws: SocketLike, remoteAddr: string): SocketHandler;
}

/** What the session does with one control connection. */
export interface SocketHandler {
  onMessage(data: string | Uint8Array): void;
  onClose(): void;
  /**
   * True once the connection is a peer (its `hello` was accepted). Until then it counts
   * against {@link MAX_UNADMITTED_SOCKETS} and is closed after {@link HELLO_TIMEOUT_MS}.
   */
  admitted(): boolean;
}

/** The session's view of a WebSocket. */
export interface SocketLike {
  send(text: string): void;
  close(code?: number, reason?: string): void;
}

/** The host's routes. Each app counts its own connections waiting for admission. */
export function createApp(hooks: ServerHooks): Hono {
  const app = new Hono();
  const page = hooks.peerPage;
  // Nothing but these fixed files is served from the page; the engine talks to /ws and /tracks.
  const asset = (pick: (a: PeerPageAssets) => string, type: string) => async (c: Context) => {
    if (!page) return c.text("Not found.\n", 404);
    return c.body(pick(await page()), 200, {
      "Content-Type": type,
      "Cache-Control": "no-cache",
    });
  };
  app.get("/", async (c) => {
    if (!page) return c.text("PhaseLock host: join it from the PhaseLock app.\n");
    return c.html((await page()).html, 200, {
      "Cache-Control": "no-cache",
      "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; " +
        "connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; worker-src 'self'",
      "X-Frame-Options": "DENY",
      "Referrer-Policy": "no-referrer",
    });
  });
  app.get("/peer.js", asset((a) => a.js, "text/javascript; charset=utf-8"));
  app.get("/decode_worker.js", asset((a) => a.worker, "text/javascript; charset=utf-8"));
  app.get("/app.css", asset((a) => a.css, "text/css; charset=utf-8"));
  app.get(
    "/favicon.svg",
    (c) =>
      c.body(ICON_SVG, 200, { "Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400" }),
  );
  let waiting = 0; // upgraded control connections not admitted yet
  app.get("/ws", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.text("This is the PhaseLock control channel: connect with a WebSocket.\n", 426);
    }
    // Checked and counted in one synchronous step, so simultaneous upgrades cannot overshoot.
    if (waiting >= MAX_UNADMITTED_SOCKETS) {
      return c.text(
        `Too many connections are waiting to join (${MAX_UNADMITTED_SOCKETS}); ` +
          "try again in a few seconds.\n",
        503,
        { "Retry-After": String(HELLO_TIMEOUT_MS / 1000) },
      );
    }
    // Read before the upgrade: afterwards the request is gone and so is its address.
    const remoteAddr = (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr;
    let upgrade;
    try {
      upgrade = Deno.upgradeWebSocket(c.req.raw);
    } catch {
      return c.text("That is not a valid WebSocket handshake.\n", 400);
    }
    const { socket, response } = upgrade;
    socket.binaryType = "arraybuffer";
    let handler: SocketHandler | null = null;
    waiting++;
    let counted = true;
    const settle = () => {
      if (!counted) return;
      counted = false;
      waiting--;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      settle();
      if (handler?.admitted()) return;
      try {
        socket.close(1008, "hello timeout");
      } catch { /* never opened, or already closing */ }
    }, HELLO_TIMEOUT_MS);
    socket.onopen = () => {
      handler = hooks.onSocket({
        send: (t) => socket.readyState === WebSocket.OPEN && socket.send(t),
        close: (code, reason) => socket.close(code, reason),
      }, remoteAddr?.hostname ?? "");
    };
    socket.onmessage = (e) => {
      const d = e.data;
      const size = typeof d === "string" ? d.length : (d as ArrayBuffer).byteLength ?? 0;
      // A string is at least as many UTF-8 bytes as it has UTF-16 units: over the cap either way.
      if (size > MAX_MESSAGE_BYTES) {
        socket.close(1009, "message too large");
        return;
      }
      handler?.onMessage(typeof d === "string" ? d : new Uint8Array(d as ArrayBuffer));
      if (counted && handler?.admitted()) settle();
    };
    socket.onclose = () => {
      settle();
      handler?.onClose();
      handler = null;
    };
    return response;
  });
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
