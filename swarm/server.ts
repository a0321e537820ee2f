/**
 * The swarm server (`phaselock serve --headless`): the swarm page, and the WebSocket at
 * `/swarm` where browsers meet. A member joins a swarm by its id (the SHA-256 of the swarm key,
 * hashed in the page), gets a per-swarm member id, and from then on the server only introduces
 * members, relays WebRTC signalling to one member and small state messages to the others, and
 * answers time pings. Files move between the members' data channels: there is no upload route,
 * every frame goes through {@link decodeToServer} (no free-form field, 16 KB at most), and a
 * member sending more than {@link MAX_FRAMES_PER_SEC} frames or {@link MAX_BYTES_PER_SEC} bytes
 * a second (averaged over 2 s) is cut off, so no one can relay audio through it.
 *
 * `/metrics` says how busy the server is and nothing about who uses it: no names, no swarm ids.
 */
import { ICON_SVG } from "../server/control.ts";
import { type Context, Hono } from "hono";
import {
  decodeToServer,
  encode,
  type FromServer,
  type IceServer,
  MAX_BYTES_PER_SEC,
  MAX_FRAMES_PER_SEC,
  MAX_MEMBERS,
  MAX_NAME_LENGTH,
  type Member,
  type MemberId,
  SWARM_PROTOCOL,
  type SwarmId,
  type ToServer,
} from "./protocol.ts";

/** The port `phaselock serve` listens on unless told otherwise (the jam server's is 7420). */
export const DEFAULT_SWARM_PORT = 7430;
/** A connection that has not joined a swarm this long after opening is closed. */
export const JOIN_TIMEOUT_MS = 10_000;
/** Refused frames one connection may send; the next one closes it. */
export const MAX_REFUSED_FRAMES = 20;
/** The window the rate caps are averaged over: long enough to absorb a join's burst. */
export const RATE_WINDOW_MS = 10_000;
/**
 * Connections that may wait to join at once; further upgrades get HTTP 503. Far above a
 * swarm of twenty reloading together.
 */
export const MAX_PENDING_SOCKETS = 64;

/** The swarm page: HTML, the shared stylesheet, its bundle and the decoder worker. */
export interface SwarmPageAssets {
  html: string;
  css: string;
  js: string;
  worker: string;
}

/** The caps, overridable for tests. */
export interface SwarmLimits {
  maxMembers: number;
  maxFramesPerSec: number;
  maxBytesPerSec: number;
  rateWindowMs: number;
  maxRefused: number;
  joinTimeoutMs: number;
  maxPendingSockets: number;
}

export const SWARM_LIMITS: Readonly<SwarmLimits> = {
  maxMembers: MAX_MEMBERS,
  maxFramesPerSec: MAX_FRAMES_PER_SEC,
  maxBytesPerSec: MAX_BYTES_PER_SEC,
  rateWindowMs: RATE_WINDOW_MS,
  maxRefused: MAX_REFUSED_FRAMES,
  joinTimeoutMs: JOIN_TIMEOUT_MS,
  maxPendingSockets: MAX_PENDING_SOCKETS,
};

/**
 * One log entry: a `type` (`swarm-join`, `swarm-leave`, `swarm-refused`, `swarm-error`,
 * `swarm-cut`), a human `message`, and the details. Member names appear; file names never
 * reach the server, and a swarm is named by the first 8 hex digits of its id only.
 */
export interface SwarmLogEntry {
  type: string;
  message: string;
  [k: string]: unknown;
}

/** Where the server logs: a function, or anything with `write` (the project's LogFile). */
export type SwarmLog =
  | ((entry: SwarmLogEntry) => void)
  | { write(entry: Record<string, unknown>): void };

export interface SwarmServerOptions {
  /** Default {@link DEFAULT_SWARM_PORT}; 0 picks a free port. */
  port?: number;
  /** Default 0.0.0.0 (every interface). */
  hostname?: string;
  /** Serve HTTPS/WSS with this certificate chain and key (PEM text). */
  tls?: { cert: string; key: string };
  /** Handed to every member in `welcome`. */
  iceServers?: IceServer[];
  /** The swarm page, read when first asked for; absent or failing: `/` answers 503. */
  assets?: () => Promise<SwarmPageAssets>;
  log?: SwarmLog;
  /** Server time for pongs (ms); default `performance.timeOrigin + performance.now()`. */
  now?: () => number;
  limits?: Partial<SwarmLimits>;
}

/** What `/metrics` answers: counts only. */
export interface SwarmMetrics {
  swarms: number;
  members: number;
  /** Frames received per second, over the last 10 s. */
  messagesPerSec: number;
  /** Frames refused since the start (malformed, out of order, to no one). */
  refusedMessages: number;
  uptimeSec: number;
}

export interface SwarmServer {
  port: number;
  /** `http(s)://HOST:PORT/` as bound (every interface: 127.0.0.1). */
  url: string;
  tls: boolean;
  /** Closes every connection (1001) and stops listening. */
  close(): Promise<void>;
  stats(): SwarmMetrics;
}

/** One WebSocket, before and after it joins. */
interface Conn {
  socket: WebSocket;
  addr: string;
  member: { id: MemberId; name: string; swarm: Swarm } | null;
  /** Arrival times and sizes of the frames within the rate window. */
  recent: { atMs: number; bytes: number }[];
  recentBytes: number;
  refused: number;
  /** Still counted against the pending cap (not joined, not closed). */
  pending: boolean;
  done: boolean;
  joinTimer: ReturnType<typeof setTimeout> | undefined;
}

interface Swarm {
  id: SwarmId;
  nextId: MemberId;
  members: Map<MemberId, Conn>;
}

/** Frames per one-second bucket over the last ten seconds. */
class RateMeter {
  #counts = new Array<number>(10).fill(0);
  #seconds = new Array<number>(10).fill(-1);
  constructor(private readonly startMs: number) {}
  add(nowMs: number) {
    const s = Math.floor(nowMs / 1000), i = s % 10;
    if (this.#seconds[i] !== s) {
      this.#seconds[i] = s;
      this.#counts[i] = 0;
    }
    this.#counts[i]++;
  }
  perSec(nowMs: number): number {
    const s = Math.floor(nowMs / 1000);
    let sum = 0;
    for (let i = 0; i < 10; i++) {
      if (this.#seconds[i] > s - 10 && this.#seconds[i] <= s) sum += this.#counts[i];
    }
    const span = Math.min(10, Math.max(1, (nowMs - this.startMs) / 1000));
    return Math.round((sum / span) * 10) / 10;
  }
}

/** Control, bidi and line-separator characters go from names: they are shown and logged. */
// deno-lint-ignore no-control-regex
const UNSHOWABLE = /[\x00-\x1f\x7f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** At most `max` UTF-16 units, never cutting a character in half. */
function fit(s: string, max: number): string {
  let out = "";
  for (const ch of s) {
    if (out.length + ch.length > max) break;
    out += ch;
  }
  return out.trimEnd();
}

/**
 * The name a member shows: trimmed, "Guest" when empty, and "Alex (2)", "Alex (3)" when the
 * swarm already has an Alex (compared without case: "alex" and "Alex" look alike in a list).
 */
export function memberName(raw: string, taken: Iterable<string>): string {
  const base = fit(raw.replace(UNSHOWABLE, "").trim(), MAX_NAME_LENGTH) || "Guest";
  const used = new Set([...taken].map((n) => n.toLowerCase()));
  if (!used.has(base.toLowerCase())) return base;
  for (let n = 2;; n++) {
    const suffix = ` (${n})`;
    const name = fit(base, MAX_NAME_LENGTH - suffix.length) + suffix;
    if (!used.has(name.toLowerCase())) return name;
  }
}

/** Starts the swarm server; resolves once it listens. */
export function startSwarmServer(opts: SwarmServerOptions = {}): Promise<SwarmServer> {
  const limits: SwarmLimits = { ...SWARM_LIMITS, ...opts.limits };
  const now = opts.now ?? (() => performance.timeOrigin + performance.now());
  const iceServers = (opts.iceServers ?? []).map((s) => ({ ...s }));
  const write = opts.log;
  const log = (entry: SwarmLogEntry) => {
    if (!write) return;
    if (typeof write === "function") write(entry);
    else write.write(entry);
  };
  const startMs = performance.now();
  const meter = new RateMeter(startMs);
  const swarms = new Map<SwarmId, Swarm>();
  const conns = new Set<Conn>();
  let pending = 0;
  let refusedTotal = 0;

  const stats = (): SwarmMetrics => {
    let members = 0;
    for (const s of swarms.values()) members += s.members.size;
    const t = performance.now();
    return {
      swarms: swarms.size,
      members,
      messagesPerSec: meter.perSec(t),
      refusedMessages: refusedTotal,
      uptimeSec: Math.floor((t - startMs) / 1000),
    };
  };

  const send = (conn: Conn, m: FromServer) => {
    if (conn.socket.readyState !== WebSocket.OPEN) return;
    try {
      conn.socket.send(encode(m));
    } catch { /* closing under us */ }
  };
  const shortId = (s: Swarm) => s.id.slice(0, 8);

  /** Takes the connection out of its swarm (once), telling the others. */
  const leave = (conn: Conn, why: string) => {
    const m = conn.member;
    if (!m) return;
    conn.member = null;
    m.swarm.members.delete(m.id);
    for (const other of m.swarm.members.values()) send(other, { type: "left", id: m.id });
    const dissolved = m.swarm.members.size === 0;
    if (dissolved) swarms.delete(m.swarm.id);
    log({
      type: "swarm-leave",
      message: `${m.name} (#${m.id}) left swarm ${shortId(m.swarm)} (${why})` +
        (dissolved ? "; the swarm is empty and gone" : ""),
      swarm: shortId(m.swarm),
      id: m.id,
      name: m.name,
      why,
      members: m.swarm.members.size,
    });
  };

  const unpend = (conn: Conn) => {
    clearTimeout(conn.joinTimer);
    conn.joinTimer = undefined;
    if (conn.pending) {
      conn.pending = false;
      pending--;
    }
  };

  /** Ends a connection from this side: out of its swarm at once, then the close handshake. */
  const cut = (conn: Conn, code: number, reason: string, why = reason) => {
    if (conn.done) return;
    conn.done = true;
    unpend(conn);
    leave(conn, why);
    try {
      conn.socket.close(code, reason);
    } catch { /* already closing */ }
  };

  /** Refuses one frame: an error reply, counted; too many of them end the connection. */
  const refuse = (conn: Conn, message: string) => {
    refusedTotal++;
    conn.refused++;
    send(conn, { type: "error", message: message.slice(0, 400) });
    log({
      type: "swarm-error",
      message: `refused a frame from ${who(conn)}: ${message}`,
      addr: conn.addr,
    });
    if (conn.refused > limits.maxRefused) {
      log({
        type: "swarm-cut",
        message: `closed ${who(conn)}: more than ${limits.maxRefused} refused frames`,
        addr: conn.addr,
      });
      cut(conn, 1008, "too many refused messages");
    }
  };
  const who = (conn: Conn) =>
    conn.member
      ? `${conn.member.name} (#${conn.member.id} in ${shortId(conn.member.swarm)})`
      : `an unjoined connection from ${conn.addr || "?"}`;

  /** Counts a frame against the rate caps; false when it broke one (the connection is cut). */
  const withinRate = (conn: Conn, bytes: number): boolean => {
    const t = performance.now();
    const r = conn.recent;
    r.push({ atMs: t, bytes });
    conn.recentBytes += bytes;
    while (r.length && r[0].atMs <= t - limits.rateWindowMs) conn.recentBytes -= r.shift()!.bytes;
    const windowSec = limits.rateWindowMs / 1000;
    const tooMany = r.length > limits.maxFramesPerSec * windowSec;
    const tooBig = conn.recentBytes > limits.maxBytesPerSec * windowSec;
    if (!tooMany && !tooBig) return true;
    const reason = tooMany
      ? `more than ${limits.maxFramesPerSec} messages a second`
      : `more than ${Math.round(limits.maxBytesPerSec / 1024)} KB a second`;
    log({ type: "swarm-cut", message: `closed ${who(conn)}: ${reason}`, addr: conn.addr });
    cut(conn, 1008, reason);
    return false;
  };

  const join = (conn: Conn, m: Extract<ToServer, { type: "join" }>) => {
    if (conn.member) return refuse(conn, "You have already joined a swarm.");
    if (m.protocol !== SWARM_PROTOCOL) {
      const reason = `This server speaks swarm protocol ${SWARM_PROTOCOL} and this page ` +
        `speaks protocol ${m.protocol}: reload the page (or update PhaseLock) so both match.`;
      return turnAway(conn, reason);
    }
    let swarm = swarms.get(m.swarm);
    if (swarm && swarm.members.size >= limits.maxMembers) {
      return turnAway(conn, `This swarm is full (${limits.maxMembers} members).`, swarm);
    }
    if (!swarm) {
      swarm = { id: m.swarm, nextId: 1, members: new Map() };
      swarms.set(m.swarm, swarm);
    }
    unpend(conn);
    const others: Member[] = [...swarm.members.values()].map((c) => ({
      id: c.member!.id,
      name: c.member!.name,
    }));
    const me: Member = { id: swarm.nextId++, name: memberName(m.name, others.map((o) => o.name)) };
    conn.member = { ...me, swarm };
    swarm.members.set(me.id, conn);
    send(conn, { type: "welcome", you: me.id, members: others, iceServers });
    for (const other of swarm.members.values()) {
      if (other !== conn) send(other, { type: "joined", member: me });
    }
    log({
      type: "swarm-join",
      message: `${me.name} joined swarm ${shortId(swarm)} as #${me.id} ` +
        `(${swarm.members.size} member${swarm.members.size === 1 ? "" : "s"})`,
      swarm: shortId(swarm),
      id: me.id,
      name: me.name,
      members: swarm.members.size,
      addr: conn.addr,
    });
  };

  /** A refused join: one sentence, then the socket closes. */
  const turnAway = (conn: Conn, reason: string, swarm?: Swarm) => {
    send(conn, { type: "refused", reason });
    log({
      type: "swarm-refused",
      message: `refused a join${swarm ? ` to swarm ${shortId(swarm)}` : ""}: ${reason}`,
      addr: conn.addr,
    });
    cut(conn, 1000, "refused");
  };

  const onFrame = (conn: Conn, data: unknown) => {
    const t2 = now();
    if (conn.done) return;
    meter.add(performance.now());
    const bytes = typeof data === "string"
      ? (data.length > 1 << 20 ? data.length : new TextEncoder().encode(data).byteLength)
      : data instanceof ArrayBuffer
      ? data.byteLength
      : (data as Blob).size ?? 0;
    if (!withinRate(conn, bytes)) return;
    let m: ToServer;
    try {
      m = decodeToServer(data);
    } catch (e) {
      return refuse(conn, (e as Error).message);
    }
    if (m.type === "join") return join(conn, m);
    const me = conn.member;
    if (!me) return refuse(conn, `Join a swarm first (got ${m.type}).`);
    switch (m.type) {
      case "ping":
        // t3 is read as late as possible: the member's clock filter fits t2 and t3 apart.
        if (conn.socket.readyState !== WebSocket.OPEN) return;
        conn.socket.send(JSON.stringify({ type: "pong", t1: m.t1, t2, t3: now() }));
        return;
      case "signal": {
        const target = me.swarm.members.get(m.to);
        if (!target || m.to === me.id) {
          return refuse(conn, `There is no member #${m.to} in this swarm to signal.`);
        }
        const out: FromServer = { type: "signal", from: me.id };
        if (m.description) out.description = { type: m.description.type, sdp: m.description.sdp };
        if (m.candidate) out.candidate = m.candidate;
        let text: string;
        try {
          text = encode(out);
        } catch (e) {
          return refuse(conn, (e as Error).message);
        }
        if (target.socket.readyState === WebSocket.OPEN) target.socket.send(text);
        return;
      }
      case "state": {
        const text = encode({ type: "state", from: me.id, state: m.state });
        for (const other of me.swarm.members.values()) {
          if (other !== conn && other.socket.readyState === WebSocket.OPEN) {
            other.socket.send(text);
          }
        }
        return;
      }
      case "bye":
        return cut(conn, 1000, "bye");
    }
  };

  const app = new Hono();
  // Every answer: no sniffing, no framing, no referrer.
  app.use("*", async (c, next) => {
    await next();
    if (c.res.status === 101) return; // the upgrade's response is Deno's own
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "no-referrer");
  });
  const page = opts.assets;
  const unavailable = (c: Context) =>
    c.text("The swarm page is not available on this server (see its log).\n", 503);
  const asset = (pick: (a: SwarmPageAssets) => string, type: string) => async (c: Context) => {
    let assets: SwarmPageAssets;
    try {
      if (!page) return unavailable(c);
      assets = await page();
    } catch (e) {
      log({ type: "swarm-page", message: `cannot serve the swarm page: ${(e as Error).message}` });
      return unavailable(c);
    }
    return c.body(pick(assets), 200, { "Content-Type": type, "Cache-Control": "no-cache" });
  };
  const routes: [string, (c: Context) => Response | Promise<Response>][] = [
    ["/", async (c) => {
      const r = await asset((a) => a.html, "text/html; charset=utf-8")(c);
      if (r.status === 200) {
        r.headers.set(
          "Content-Security-Policy",
          "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
            "connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; worker-src 'self'",
        );
      }
      return r;
    }],
    ["/swarm.js", asset((a) => a.js, "text/javascript; charset=utf-8")],
    ["/decode_worker.js", asset((a) => a.worker, "text/javascript; charset=utf-8")],
    ["/app.css", asset((a) => a.css, "text/css; charset=utf-8")],
    [
      "/favicon.svg",
      (c) =>
        c.body(ICON_SVG, 200, {
          "Content-Type": "image/svg+xml",
          "Cache-Control": "max-age=86400",
        }),
    ],
    ["/metrics", (c) => c.json(stats(), 200, { "Cache-Control": "no-store" })],
    ["/swarm", (c) => upgrade(c)],
  ];
  for (const [path, handler] of routes) {
    app.get(path, handler);
    app.all(path, (c) => c.text("Method not allowed.\n", 405, { Allow: "GET, HEAD" }));
  }
  app.notFound((c) => c.text("Not found.\n", 404));

  const upgrade = (c: Context): Response => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.text("This is the PhaseLock swarm channel: connect with a WebSocket.\n", 426);
    }
    // Checked and counted in one synchronous step, so simultaneous upgrades cannot overshoot.
    if (pending >= limits.maxPendingSockets) {
      return c.text(
        `Too many connections are waiting to join (${limits.maxPendingSockets}); ` +
          "try again in a few seconds.\n",
        503,
        { "Retry-After": "10" },
      );
    }
    const addr = (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr?.hostname ?? "";
    let upgraded;
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw);
    } catch {
      return c.text("That is not a valid WebSocket handshake.\n", 400);
    }
    const { socket, response } = upgraded;
    socket.binaryType = "arraybuffer";
    const conn: Conn = {
      socket,
      addr,
      member: null,
      recent: [],
      recentBytes: 0,
      refused: 0,
      pending: true,
      done: false,
      joinTimer: undefined,
    };
    pending++;
    conns.add(conn);
    conn.joinTimer = setTimeout(() => {
      conn.joinTimer = undefined;
      if (conn.member || conn.done) return;
      log({ type: "swarm-cut", message: `closed ${who(conn)}: no join within the time`, addr });
      cut(conn, 1008, "join timeout");
    }, limits.joinTimeoutMs);
    socket.onmessage = (e) => {
      // A throw here would end the process: whatever goes wrong with one frame stays with it.
      try {
        onFrame(conn, e.data);
      } catch (err) {
        refuse(conn, `The server could not handle that message: ${(err as Error).message}`);
      }
    };
    socket.onclose = () => {
      conns.delete(conn);
      conn.done = true;
      unpend(conn);
      leave(conn, "closed");
    };
    socket.onerror = () => {}; // the close that follows says it all
    return response;
  };

  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    const hostname = opts.hostname ?? "0.0.0.0";
    try {
      server = Deno.serve({
        port: opts.port ?? DEFAULT_SWARM_PORT,
        hostname,
        ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
        onListen: () => {},
      }, app.fetch);
    } catch (e) {
      reject(e);
      return;
    }
    const port = server.addr.port;
    const host = hostname === "0.0.0.0" || hostname === "::" || hostname === ""
      ? "127.0.0.1"
      : hostname.includes(":")
      ? `[${hostname}]`
      : hostname;
    resolve({
      port,
      url: `${opts.tls ? "https" : "http"}://${host}:${port}/`,
      tls: !!opts.tls,
      stats,
      close: async () => {
        for (const conn of [...conns]) cut(conn, 1001, "server closing");
        await server.shutdown();
      },
    });
  });
}
