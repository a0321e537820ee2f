/**
 * The control server: the app's UI and its WebSocket to the engine, on 127.0.0.1 only, at a
 * random port. Nothing here is reachable from the LAN (the jam server is what the LAN sees),
 * and even on this machine every control needs the per-run token — given to the window in
 * the URL fragment, which browsers never send to servers — and a loopback `Host` header, so a
 * web page on another origin (DNS rebinding included) cannot drive the host.
 */
import { Hono } from "hono";
import { upgradeWebSocket } from "hono/deno";
import { MAX_FILE_BYTES } from "../audio/mp3_scan.ts";
import { type Command, type EngineEvent, parseCommand } from "../session/commands.ts";

/** Largest control frame from the UI; commands are short. */
export const MAX_CONTROL_FRAME_BYTES = 64 * 1024;

export interface UiAssets {
  html: string;
  js: string;
  css: string;
}

/** What the control server drives: the app controller, seen through this narrow surface. */
export interface ControlTarget {
  subscribe(fn: (e: EngineEvent) => void): () => void;
  run(c: Command): Promise<void>;
  hostNowMs(): number;
  addUploaded(path: string, fileName: string): Promise<string | null>;
}

export interface ControlOptions {
  token: string;
  /** Folder where files chosen in the UI are stored before they are added or requested. */
  uploadDir: string;
  assets: () => Promise<UiAssets>;
  /** The user asked to quit (the `quit` command). */
  onQuit: () => void;
  /** A person did something in the UI (a command or an upload; not the clock pings). */
  onActivity?: () => void;
}

/** The app's mark: a green disc with a ring, as in the Home screen's title. */
export const ICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
  '<circle cx="16" cy="16" r="15" fill="#1db954" fill-opacity=".3"/>' +
  '<circle cx="16" cy="16" r="9" fill="#1db954"/></svg>';

/** Compares without an early exit, so the time taken says nothing about the token. */
export function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** A fresh random token: 128 bits, URL-safe. */
export function newToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** `song (1).mp3` stays readable; path separators and control characters go. */
export function safeFileName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  // deno-lint-ignore no-control-regex
  let clean = base.replace(/[\x00-\x1f\x7f]/g, "").trim();
  // File systems allow 255 bytes per name: cut by UTF-8 bytes, never inside a character.
  const enc = new TextEncoder();
  while (enc.encode(clean).length > 200) clean = [...clean].slice(0, -1).join("");
  return clean === "" || clean === "." || clean === ".." ? "upload.mp3" : clean;
}

export function createControlApp(target: ControlTarget, opts: ControlOptions, port: () => number) {
  const app = new Hono();
  // DNS rebinding: a foreign name that resolves to 127.0.0.1 still carries its own Host.
  app.use("*", async (c, next) => {
    const host = c.req.header("Host") ?? "";
    const p = port();
    if (host !== `127.0.0.1:${p}` && host !== `localhost:${p}` && host !== `[::1]:${p}`) {
      return c.text("This address only answers PhaseLock's own window.\n", 403);
    }
    await next();
  });
  const authorised = (token: string | undefined) =>
    token !== undefined && sameToken(token, opts.token);
  const sameOrigin = (origin: string | undefined) => {
    if (origin === undefined) return true; // not a browser: the token is what counts
    const p = port();
    return origin === `http://127.0.0.1:${p}` || origin === `http://localhost:${p}`;
  };
  const noStore = { "Cache-Control": "no-store" };

  app.get("/", async (c) => {
    const a = await opts.assets();
    return c.html(a.html, 200, {
      ...noStore,
      "Content-Security-Policy": "default-src 'self'; img-src 'self' http: data: blob:; " +
        "connect-src 'self' ws://127.0.0.1:* ws://localhost:*; style-src 'self' 'unsafe-inline'",
      "X-Frame-Options": "DENY",
    });
  });
  app.get("/app.js", async (c) =>
    c.body((await opts.assets()).js, 200, {
      ...noStore,
      "Content-Type": "text/javascript; charset=utf-8",
    }));
  app.get(
    "/app.css",
    async (c) =>
      c.body((await opts.assets()).css, 200, {
        ...noStore,
        "Content-Type": "text/css; charset=utf-8",
      }),
  );

  app.get("/favicon.svg", (c) =>
    c.body(ICON_SVG, 200, {
      "Content-Type": "image/svg+xml",
      "Cache-Control": "max-age=86400",
    }));

  app.get("/ws", async (c, next) => {
    if (!authorised(c.req.query("token")) || !sameOrigin(c.req.header("Origin"))) {
      return c.text("Not allowed.\n", 403);
    }
    return await upgradeWebSocket(() => {
      let off: (() => void) | null = null;
      return {
        onOpen(_e, ws) {
          off = target.subscribe((e) => {
            if (ws.readyState === 1) ws.send(JSON.stringify(e));
          });
        },
        onMessage(e, ws) {
          const text = typeof e.data === "string" ? e.data : "";
          if (text.length > MAX_CONTROL_FRAME_BYTES) return ws.close(1009, "message too large");
          let o: unknown;
          try {
            o = JSON.parse(text);
          } catch {
            o = null;
          }
          const ping = (o as { ping?: unknown } | null)?.ping;
          if (typeof ping === "number") {
            ws.send(JSON.stringify({ type: "pong", t0: ping, hostMs: target.hostNowMs() }));
            return;
          }
          const cmd = parseCommand(text);
          if ("error" in cmd) {
            ws.send(JSON.stringify({ type: "error", message: cmd.error }));
            return;
          }
          if (cmd.cmd === "quit") return opts.onQuit();
          opts.onActivity?.();
          target.run(cmd).catch((err) =>
            ws.send(JSON.stringify({ type: "error", message: (err as Error).message }))
          );
        },
        onClose() {
          off?.();
          off = null;
        },
      };
    })(c, next);
  });

  // The window has no file dialog of the OS: the page's file input or a drop sends the bytes.
  app.post("/upload", async (c) => {
    if (!authorised(c.req.header("X-PhaseLock-Token")) || !sameOrigin(c.req.header("Origin"))) {
      return c.json({ error: "Not allowed." }, 403);
    }
    opts.onActivity?.();
    const fileName = safeFileName(c.req.query("name") ?? "");
    const declared = Number(c.req.header("Content-Length") ?? NaN);
    const tooBig = `"${fileName}" is larger than ${MAX_FILE_BYTES / 1048576} MB, the limit.`;
    if (declared > MAX_FILE_BYTES) return c.json({ error: tooBig }, 413);
    const body = c.req.raw.body;
    if (!body) return c.json({ error: "The upload was empty." }, 400);
    // A folder per upload keeps the file's own name (peers and requests show it).
    const dir = `${opts.uploadDir}/${crypto.randomUUID()}`;
    const path = `${dir}/${fileName}`;
    let file: Deno.FsFile;
    try {
      await Deno.mkdir(dir, { recursive: true });
      file = await Deno.open(path, { write: true, create: true, truncate: true });
    } catch (e) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await body.cancel().catch(() => {});
      return c.json({ error: `Cannot store "${fileName}": ${(e as Error).message}` }, 500);
    }
    let size = 0;
    try {
      for await (const chunk of body) {
        size += chunk.byteLength;
        if (size > MAX_FILE_BYTES) throw new RangeError(tooBig);
        for (let done = 0; done < chunk.byteLength;) {
          done += await file.write(chunk.subarray(done));
        }
      }
    } catch (e) {
      file.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const big = e instanceof RangeError;
      return c.json(
        { error: big ? tooBig : `The upload stopped: ${(e as Error).message}` },
        big ? 413 : 400,
      );
    }
    file.close();
    const problem = await target.addUploaded(path, fileName).catch((e) =>
      `Cannot use "${fileName}": ${(e as Error).message}`
    );
    if (problem) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return c.json({ error: problem }, 422);
    }
    return c.json({ ok: true, fileName });
  });
  return app;
}

/** Starts the control server on 127.0.0.1 at a free port. */
export function serveControl(target: ControlTarget, opts: ControlOptions) {
  let port = 0;
  const app = createControlApp(target, opts, () => port);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  port = (server.addr as Deno.NetAddr).port;
  return {
    port,
    url: `http://127.0.0.1:${port}/#token=${opts.token}`,
    stop: () => server.shutdown(),
  };
}
