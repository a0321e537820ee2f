/**
 * The control server's locks, tried from outside with real processes and sockets: the app
 * (`--no-window`) runs inside a network namespace of a private bridge (tests/harness/netns.ts),
 * so the jams it creates (and their mDNS) stay off this machine's network. Probes that must
 * run on the app's side of a namespace run in an *agent*: this same file started with
 * `PL_SEC_AGENT=1` behind `ip netns exec`, reading one JSON call per line on stdin and
 * printing one JSON result per line (see {@link agentMain}). A legitimate UI client (the
 * right token, a loopback Host, no foreign Origin) watches the app's events throughout, so
 * every "refused" is also checked as "and nothing happened", and each test has a positive
 * control that shows the same probe succeeds with the right credentials.
 *
 *  1. Control server from the same machine without the right credentials (token, Host, Origin).
 *  2. A web page on another origin in Chromium (and a DNS-rebinding page) attacking it.
 *  3. From another machine on the LAN: the control port is unreachable, the jam port controls
 *     nothing.
 *  4. Uploads: the 50 MB cap (streamed, declared, aborted: partial files removed) and a
 *     non-MP3 upload (an error sentence, nothing queued).
 */
import { assertEquals, assertTrue } from "./assert.ts";
import { createLan, type Lan } from "./harness/netns.ts";
import { AppProcess, type Event } from "./harness/proc.ts";
import { MAX_FILE_BYTES } from "../audio/mp3_scan.ts";
import { PROTOCOL_VERSION } from "../session/protocol.ts";

const SELF = new URL(import.meta.url).pathname;
const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const GOOD_MP3 = `${FIXTURES}tones44k.mp3`;
const NOT_MP3 = `${FIXTURES}notaudio.mp3`;
const MB = 1024 * 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();
const opts = { sanitizeOps: false, sanitizeResources: false };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ======================= probes (run here or, through an agent, in a namespace) ============

interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}
type Failure = { error: string };

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** The parts, one after another. */
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
}

/** An HTTP/1.1 request head with exactly these headers. */
function requestHead(method: string, path: string, headers: Record<string, string>): Uint8Array {
  return enc.encode(
    `${method} ${path} HTTP/1.1\r\n` +
      Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n",
  );
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

/** Runs `fn` on a new connection to `host:port` and closes it after; a refused connect fails. */
async function withConn<T>(
  host: string,
  port: number,
  fn: (conn: Deno.Conn) => Promise<T>,
): Promise<T | Failure> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: host, port });
  } catch (e) {
    return { error: `connect: ${(e as Error).name}` };
  }
  try {
    return await fn(conn);
  } finally {
    closeQuietly(conn);
  }
}

/** Reads a connection until EOF (or an error, or the deadline); returns what arrived. */
async function readAll(conn: Deno.Conn, timeoutMs: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let n: number | null;
    try {
      n = await Promise.race([
        conn.read(buf),
        sleep(Math.max(1, deadline - Date.now())).then(() => -1),
      ]);
    } catch {
      break; // reset after the response: keep what arrived
    }
    if (n === null || n === -1) break;
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

function parseHttp(raw: Uint8Array): HttpResult | Failure {
  const text = dec.decode(raw);
  const end = text.indexOf("\r\n\r\n");
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  if (!m) return { error: `no HTTP response (${raw.length} bytes: ${text.slice(0, 80)})` };
  const headers: Record<string, string> = {};
  for (const line of text.slice(0, end < 0 ? undefined : end).split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, body: end < 0 ? "" : text.slice(end + 4) };
}

/**
 * One HTTP/1.1 request over a raw TCP connection, so Host and Origin are exactly what the
 * test says (fetch would not let a test forge Host). Body: a string or a file's bytes.
 */
async function rawHttp(o: {
  host: string;
  port: number;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  bodyFile?: string;
  timeoutMs?: number;
}): Promise<HttpResult | Failure> {
  const body = o.bodyFile ? await Deno.readFile(o.bodyFile) : o.body ? enc.encode(o.body) : null;
  const headers: Record<string, string> = {
    Host: `${o.host}:${o.port}`,
    Connection: "close",
    ...(body ? { "Content-Length": String(body.length) } : {}),
    ...o.headers,
  };
  return await withConn(o.host, o.port, async (conn) => {
    await writeAll(conn, requestHead(o.method ?? "GET", o.path, headers));
    if (body) await writeAll(conn, body).catch(() => {}); // a refusal may not read the body
    return parseHttp(await readAll(conn, o.timeoutMs ?? 10000));
  });
}

/** A masked client text frame (RFC 6455 §5.2). */
function wsFrame(text: string): Uint8Array {
  const payload = enc.encode(text);
  const n = payload.length;
  const head = n < 126 ? [0x81, 0x80 | n] : [0x81, 0x80 | 126, n >> 8, n & 255];
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const out = new Uint8Array(head.length + 4 + n);
  out.set(head);
  out.set(mask, head.length);
  for (let i = 0; i < n; i++) out[head.length + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

interface WsResult {
  status: number;
  /** Text frames the server sent. */
  messages: string[];
  closeCode?: number;
  closeReason?: string;
  body?: string;
}

/**
 * A WebSocket handshake with exactly these headers over raw TCP; if the server upgrades, sends
 * `send` as text frames and collects what comes back for `listenMs` (or until it closes).
 */
async function rawWs(o: {
  host: string;
  port: number;
  path: string;
  headers?: Record<string, string>;
  send?: string[];
  listenMs?: number;
}): Promise<WsResult | Failure> {
  return await withConn(o.host, o.port, async (conn): Promise<WsResult | Failure> => {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const headers: Record<string, string> = {
      Host: `${o.host}:${o.port}`,
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": key,
      "Sec-WebSocket-Version": "13",
      ...o.headers,
    };
    await writeAll(conn, requestHead("GET", o.path, headers));
    // Read the response head (and whatever follows it).
    let buf: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    const deadline = Date.now() + 10000;
    let headEnd = -1;
    while (headEnd < 0 && Date.now() < deadline) {
      const n = await Promise.race([
        conn.read(chunk).catch(() => null),
        sleep(Math.max(1, deadline - Date.now())).then(() => null),
      ]);
      if (n === null) break;
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
      headEnd = dec.decode(buf).indexOf("\r\n\r\n");
    }
    const head = dec.decode(buf);
    const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (!m) return { error: `no handshake response: ${head.slice(0, 80)}` };
    const status = Number(m[1]);
    if (status !== 101) {
      // Refused: the body is as long as Content-Length says (the connection stays open).
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      let body = head.slice(headEnd + 4);
      while (enc.encode(body).length < length && Date.now() < deadline) {
        const n = await Promise.race([conn.read(chunk).catch(() => null), sleep(2000)]);
        if (typeof n !== "number") break;
        body += dec.decode(chunk.subarray(0, n));
      }
      return { status, messages: [], body };
    }
    // Upgraded: send the frames, then parse server frames (unmasked) until close or timeout.
    for (const s of o.send ?? []) await writeAll(conn, wsFrame(s));
    const tail = buf.subarray(enc.encode(head.slice(0, headEnd + 4)).length);
    const more = await readAll(conn, o.listenMs ?? 1500);
    const data = new Uint8Array(tail.length + more.length);
    data.set(tail);
    data.set(more, tail.length);
    const r: WsResult = { status, messages: [] };
    let p = 0;
    while (p + 2 <= data.length) {
      const op = data[p] & 0x0f;
      let len = data[p + 1] & 0x7f;
      p += 2;
      if (len === 126) {
        len = (data[p] << 8) | data[p + 1];
        p += 2;
      } else if (len === 127) {
        len = Number(new DataView(data.buffer, data.byteOffset + p, 8).getBigUint64(0));
        p += 8;
      }
      const payload = data.subarray(p, p + len);
      p += len;
      if (op === 1) r.messages.push(dec.decode(payload));
      if (op === 8) {
        r.closeCode = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
        r.closeReason = dec.decode(payload.subarray(2));
        break;
      }
    }
    return r;
  });
}

/** "connected", "refused", or the error's name. */
async function tcpConnect(host: string, port: number): Promise<string> {
  try {
    const c = await Promise.race([
      Deno.connect({ hostname: host, port }),
      sleep(5000).then(() => {
        throw new Error("timeout");
      }),
    ]);
    c.close();
    return "connected";
  } catch (e) {
    return e instanceof Deno.errors.ConnectionRefused ? "refused" : (e as Error).name;
  }
}

/** A standard WebSocket client: sends `send` once open, collects until close or `listenMs`. */
function wsTry(url: string, send: string[], listenMs = 4000) {
  return new Promise<
    { opened: boolean; messages: string[]; closeCode?: number; closeReason?: string }
  >((resolve) => {
    const r = {
      opened: false,
      messages: [] as string[],
      closeCode: undefined as number | undefined,
      closeReason: undefined as string | undefined,
    };
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      return resolve(r);
    }
    const t = setTimeout(() => {
      ws.close();
      resolve(r);
    }, listenMs);
    ws.onopen = () => {
      r.opened = true;
      for (const s of send) ws.send(s);
    };
    ws.onmessage = (e) => r.messages.push(String(e.data));
    ws.onerror = () => {};
    ws.onclose = (e) => {
      clearTimeout(t);
      r.closeCode = e.code;
      r.closeReason = e.reason;
      resolve(r);
    };
  });
}

/** Everything under `dir`, depth first (none: also when it does not exist). */
async function listAll(
  dir: string,
  rel = "",
): Promise<{ path: string; size: number; dir: boolean }[]> {
  const out: { path: string; size: number; dir: boolean }[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}${rel}`)) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory) {
        out.push({ path, size: 0, dir: true }, ...await listAll(dir, path));
      } else {
        const size = (await Deno.stat(`${dir}${path}`).catch(() => null))?.size ?? 0;
        out.push({ path, size, dir: false });
      }
    }
  } catch { /* not there (yet, or any more) */ }
  return out;
}

/** What is left under `dir` (files and folders), as paths. */
async function leftovers(dir: string): Promise<string[]> {
  return (await listAll(dir)).map((e) => e.path);
}

/** Sizes of the files anywhere under `dir`. */
async function fileSizes(dir: string): Promise<number[]> {
  return (await listAll(dir)).filter((e) => !e.dir).map((e) => e.size);
}

/**
 * POST /upload of `totalBytes` generated bytes, streamed from one reused 1 MiB buffer:
 * `chunked` (no length given), `declared` (Content-Length: totalBytes), or `abort` (chunked,
 * and the connection is dropped after `abortAfter` bytes). While sending, the largest file
 * seen in `watchDir` is noted, to show a partial file existed before it was removed.
 */
async function bigUpload(o: {
  port: number;
  token: string;
  totalBytes: number;
  mode: "chunked" | "declared" | "abort";
  abortAfter?: number;
  watchDir: string;
}): Promise<
  {
    sent: number;
    sentAtResponse: number;
    largestPartial: number;
    response: HttpResult | Failure | null;
  }
> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: o.port });
  const chunked = o.mode !== "declared";
  await writeAll(
    conn,
    enc.encode(
      `POST /upload?name=big.mp3 HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n` +
        `X-PhaseLock-Token: ${o.token}\r\nConnection: close\r\n` +
        (chunked ? "Transfer-Encoding: chunked\r\n" : `Content-Length: ${o.totalBytes}\r\n`) +
        "\r\n",
    ),
  );
  // The response may come while the body is still going (the server refuses early, then
  // drains or closes): note when its head arrives, keep reading to the end.
  let responded = false, sentAtResponse = -1, sent = 0, largestPartial = 0, head = "";
  const response = o.mode === "abort" ? null : (async () => {
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      const n = await Promise.race([conn.read(buf).catch(() => null), sleep(1000)]);
      if (n === null) break;
      if (typeof n !== "number") continue;
      parts.push(buf.slice(0, n));
      if (head.length < 65536) head += dec.decode(parts.at(-1));
      if (!responded && head.includes("\r\n\r\n")) {
        responded = true;
        sentAtResponse = sent;
      }
      // The whole response is in: done (the server may keep draining the body).
      const end = head.indexOf("\r\n\r\n");
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (end >= 0 && enc.encode(head).length >= end + 4 + length) break;
    }
    return concat(parts);
  })();
  const headArrived = (async () => {
    while (!responded) await sleep(20);
    return false;
  })();
  const block = new Uint8Array(MB).fill(0x55);
  const chunkHead = enc.encode(`${MB.toString(16)}\r\n`);
  const crlf = enc.encode("\r\n");
  try {
    while (sent < o.totalBytes && !responded) {
      const write = (async () => {
        if (chunked) await writeAll(conn, chunkHead);
        await writeAll(conn, block);
        if (chunked) await writeAll(conn, crlf);
      })();
      write.catch(() => {});
      const done = await Promise.race([write.then(() => true), headArrived]);
      if (!done) break;
      sent += MB;
      if (sent % (4 * MB) === 0) {
        largestPartial = Math.max(largestPartial, ...await fileSizes(o.watchDir));
      }
      if (o.mode === "abort" && sent >= (o.abortAfter ?? 0)) {
        // Let the server catch up so the partial file is surely there, then vanish.
        for (let i = 0; i < 50 && largestPartial < sent / 2; i++) {
          await sleep(100);
          largestPartial = Math.max(largestPartial, ...await fileSizes(o.watchDir));
        }
        conn.close();
        return { sent, sentAtResponse, largestPartial, response: null };
      }
    }
    if (chunked && !responded) await writeAll(conn, enc.encode("0\r\n\r\n")).catch(() => {});
    const raw = await response!;
    return { sent, sentAtResponse, largestPartial, response: parseHttp(raw) };
  } finally {
    closeQuietly(conn);
  }
}

// ---------- the legitimate UI client, and the evil web server, as agent state ----------

let observer: WebSocket | null = null;

/** Connects as the real UI does; every event it receives is printed as {type:"ctl", e}. */
function observe(port: number, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
    observer = ws;
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
    ws.onmessage = (m) => console.log(JSON.stringify({ type: "ctl", e: JSON.parse(m.data) }));
    ws.onclose = (e) => console.log(JSON.stringify({ type: "ctl-closed", code: e.code }));
  });
}

function ctlSend(text: string): boolean {
  observer?.send(text);
  return observer?.readyState === WebSocket.OPEN;
}

/**
 * The attacker's site: the page at `/`, its parameters at `/params`, an MP3 at `/track.mp3`,
 * results posted to `/report` (printed as {type:"report"}), and a WebSocket echo at `/echo`.
 * A second server on another port answers CORS permissively (the positive control: the
 * browser does send such requests to a loopback port that allows them).
 */
function serveEvil(params: Record<string, unknown>, html: string): { port: number } {
  const mp3 = Deno.readFileSync(GOOD_MP3);
  const cors = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const h = {
      "Access-Control-Allow-Origin": "*",
      "Access-Control-Allow-Headers": "X-PhaseLock-Token",
      "Access-Control-Allow-Methods": "POST",
    };
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: h });
    console.log(JSON.stringify({
      type: "cors-hit",
      token: req.headers.get("X-PhaseLock-Token"),
      origin: req.headers.get("Origin"),
    }));
    return new Response('{"ok":true}', { headers: h });
  });
  const all = { ...params, cors: (cors.addr as Deno.NetAddr).port };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/") return new Response(html, { headers: { "Content-Type": "text/html" } });
    if (path === "/params") return Response.json(all);
    if (path === "/track.mp3") return new Response(mp3);
    if (path === "/report") {
      console.log(JSON.stringify({ type: "report", results: JSON.parse(await req.text()) }));
      return new Response("ok");
    }
    if (path === "/echo") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(e.data);
      return response;
    }
    return new Response("no", { status: 404 });
  });
  return { port: (server.addr as Deno.NetAddr).port };
}

const AGENT_FNS = {
  rawHttp,
  rawWs,
  tcpConnect,
  wsTry,
  bigUpload,
  observe,
  ctlSend,
  serveEvil,
  fileSizes,
};

/** The agent: one JSON call per stdin line → one {type:"result", id, value|error} line. */
async function agentMain() {
  console.log(JSON.stringify({ type: "agent-ready", pid: Deno.pid }));
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === "quit") Deno.exit(0);
      const { id, fn, args } = JSON.parse(line) as { id: number; fn: string; args: unknown[] };
      const f = (AGENT_FNS as Record<string, (...a: unknown[]) => unknown>)[fn];
      (async () => {
        try {
          const value = await f(...args);
          console.log(JSON.stringify({ type: "result", id, value: value ?? null }));
        } catch (e) {
          console.log(JSON.stringify({ type: "result", id, error: String(e) }));
        }
      })();
    }
  }
  Deno.exit(0);
}

if (import.meta.main && Deno.env.get("PL_SEC_AGENT") === "1") await agentMain();

// ======================= the test side =====================================================

type Fns = typeof AGENT_FNS;

/** An agent process inside namespace `i` of `lan`. */
class Agent {
  readonly proc: AppProcess;
  #next = 1;
  constructor(scope: Scope, lan: Lan, i: number) {
    this.proc = new AppProcess([], {
      prefix: lan.exec(i),
      script: SELF,
      env: { PL_SEC_AGENT: "1" },
    });
    scope.defer(() => this.stop());
  }
  async ready() {
    await this.proc.waitFor((e) => e.type === "agent-ready", 60000, "the agent to start");
  }
  // deno-lint-ignore no-explicit-any
  async call<K extends keyof Fns>(fn: K, ...args: Parameters<Fns[K]>): Promise<any> {
    const id = this.#next++;
    await this.proc.send(JSON.stringify({ id, fn, args }));
    const r = await this.proc.waitFor(
      (e) => e.type === "result" && e.id === id,
      90000,
      `the agent's ${fn}`,
    );
    if ("error" in r) throw new Error(`agent ${fn}: ${r.error}`);
    return r.value;
  }
  /** The control events the legitimate client has received, oldest first. */
  ctl(): Event[] {
    return this.proc.events.filter((e) => e.type === "ctl").map((e) => e.e as Event);
  }
  async waitCtl(pred: (e: Event) => boolean, what: string, from = 0, timeoutMs = 15000) {
    const r = await this.proc.waitFor(
      (e) => e.type === "ctl" && pred(e.e as Event) && this.proc.events.indexOf(e) >= from,
      timeoutMs,
      what,
    );
    return r.e as Event;
  }
  mark(): number {
    return this.proc.events.length;
  }
  since(mark: number): Event[] {
    return this.proc.events.slice(mark).filter((e) => e.type === "ctl").map((e) => e.e as Event);
  }
  #stopped: Promise<unknown> | null = null;
  stop() {
    return this.#stopped ??= this.proc.quit();
  }
}

/** The app without a window, inside namespace `i`; its control port and token. */
async function startApp(scope: Scope, lan: Lan, i: number, tmp: string, bind?: string) {
  const app = new AppProcess([
    ...["--no-window", "--audio", "null", "--no-discover"],
    ...(bind ? ["--bind", bind] : []),
    ...["--config-dir", `${tmp}/cfg`, "--cache-dir", `${tmp}/cache`],
    ...["--log-file", `${tmp}/app.log`],
  ], { prefix: lan.exec(i) });
  scope.defer(() => stopApp(app));
  const ui = await app.waitFor((e) => e.type === "ui", 60000, "the UI address");
  const url = new URL(ui.url as string);
  const token = new URLSearchParams(url.hash.slice(1)).get("token")!;
  assertEquals(url.hostname, "127.0.0.1");
  assertTrue(/^[0-9a-f]{32}$/.test(token), `token ${token}`);
  return { app, port: Number(url.port), token, uploads: `${tmp}/cache/uploads` };
}

/** SIGTERM (the app ends its session cleanly), SIGKILL after 5 s. */
async function stopApp(app: AppProcess) {
  if (await Promise.race([app.exited.then(() => true), sleep(0).then(() => false)])) return;
  app.kill("SIGTERM");
  const t = setTimeout(() => app.kill("SIGKILL"), 5000);
  await app.exited;
  clearTimeout(t);
}

/** A 32-hex-digit token that is not `real`; `near` differs in its last digit only. */
function guessToken(real: string, near = false): string {
  if (near) return real.slice(0, -1) + (real.endsWith("0") ? "1" : "0");
  let g = real;
  while (g === real) {
    g = [...crypto.getRandomValues(new Uint8Array(16))]
      .map((x) => x.toString(16).padStart(2, "0")).join("");
  }
  return g;
}

/**
 * The events that say something happened on the host: all but the passive ones an idle app
 * sends by itself (clock and sync-health samples, the LAN listing).
 */
const PASSIVE = new Set(["health", "clock", "jams", "peers", "device", "audio"]);
function actions(events: Event[]): Event[] {
  return events.filter((e) => !PASSIVE.has(e.type));
}

/** Sends `status` as the legitimate client and returns the host's answer. */
async function status(agent: Agent): Promise<Event> {
  const m = agent.mark();
  assertTrue(await agent.call("ctlSend", '{"cmd":"status"}'), "the legitimate client is open");
  return await agent.waitCtl((e) => e.type === "status", "a status answer", m);
}

/** Connects the legitimate UI client of `agent` to the app's control server; waits for Home. */
async function observeApp(agent: Agent, port: number, token: string): Promise<void> {
  assertTrue(await agent.call("observe", port, token), "the legitimate UI connects");
  await agent.waitCtl((e) => e.type === "home", "Home");
}

/**
 * The app bound to loopback in namespace 0 (see {@link startApp}), on Home, with an agent
 * there whose legitimate client watches it.
 */
async function startObservedApp(scope: Scope, lan: Lan, tmp: string) {
  const started = await startApp(scope, lan, 0, tmp, "127.0.0.1");
  const agent = new Agent(scope, lan, 0);
  await agent.ready();
  await observeApp(agent, started.port, started.token);
  return { ...started, agent };
}

/** A jam to create: the `create` command for a jam on `port` (default: random, 20000..49999). */
function jamCommand(
  session: string,
  name: string,
  port = 20000 + Math.floor(Math.random() * 30000),
) {
  return { port, cmd: JSON.stringify({ cmd: "create", session, name, port }) };
}

/** Creates `jam` as the legitimate client; returns the host's session event. */
async function createJam(agent: Agent, jam: { port: number; cmd: string }): Promise<Event> {
  const mark = agent.mark();
  assertTrue(await agent.call("ctlSend", jam.cmd), "create sent");
  const session = await agent.waitCtl((e) => e.type === "session", "the jam", mark);
  assertEquals(session.port, jam.port);
  return session;
}

/** POST `path` (an /upload) with `file` as its body, from `agent`'s namespace. */
function upload(
  agent: Agent,
  port: number,
  path: string,
  headers: Record<string, string>,
  file = GOOD_MP3,
  host = "127.0.0.1",
) {
  return agent.call("rawHttp", { host, port, method: "POST", path, headers, bodyFile: file });
}

/** A refused-credentials case: what it tries, the path, and its headers. */
type Case = [string, string, Record<string, string>];

/** Each case's upload of a valid MP3 to the control server is refused with 403. */
async function assertUploadsRefused(agent: Agent, port: number, cases: Case[], when = "") {
  for (const [what, path, headers] of cases) {
    const r = await upload(agent, port, path, headers);
    assertEquals(r.status, 403, `upload with ${what}${when}: ${JSON.stringify(r)}`);
  }
}

/** Each case's control WebSocket is refused with 403 and gets no events for `send`. */
async function assertSocketsRefused(
  agent: Agent,
  port: number,
  cases: Case[],
  send: string[],
  when = "",
  listenMs?: number,
) {
  for (const [what, path, headers] of cases) {
    const r = await agent.call("rawWs", { host: "127.0.0.1", port, path, headers, send, listenMs });
    assertEquals(r.status, 403, `WebSocket with ${what}${when}: ${JSON.stringify(r)}`);
    assertEquals(r.messages, [], `WebSocket with ${what}${when}: no events`);
  }
}

/**
 * After a second: no action event reached the legitimate client since `mark` (`what` says
 * after what), nothing is queued or playing, and no uploaded file is kept.
 */
async function assertNothingHappened(agent: Agent, mark: number, uploads: string, what: string) {
  await sleep(1000);
  assertEquals(actions(agent.since(mark)), [], what);
  const st = await status(agent);
  assertEquals([st.queueLength, st.transport], [0, "stopped"], JSON.stringify(st));
  assertEquals(await leftovers(uploads), [], "no uploaded file kept");
}

/** What a test started, undone in reverse order: at its end, or at once when it runs over. */
class Scope {
  readonly #undo: (() => unknown)[] = [];
  #closed = false;
  defer(fn: () => unknown) {
    this.#undo.push(fn);
  }
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const fn of this.#undo.reverse()) {
      try {
        await fn();
      } catch { /* keep undoing */ }
    }
  }
}

/**
 * Runs `fn` with a LAN of `n` namespaces, a temporary folder and a cleanup scope; fails when it
 * takes longer than `limitMs`, and then kills what it started (by pid) before failing.
 */
async function withLan(
  n: number,
  limitMs: number,
  fn: (lan: Lan, tmp: string, scope: Scope) => Promise<void>,
): Promise<void> {
  const scope = new Scope();
  const lan = await createLan(n);
  scope.defer(() => lan.destroy());
  const tmp = await Deno.makeTempDir({ prefix: "phaselock-sec-" });
  scope.defer(() => Deno.remove(tmp, { recursive: true }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      fn(lan, tmp, scope),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the test took longer than ${limitMs / 1000} s`)),
          limitMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await scope.close();
  }
}

// ----------------------------------------------------------------------------------------------

Deno.test({
  name: "control server: no token, a wrong or guessed token, a foreign Host (DNS rebinding) or " +
    "a foreign Origin is refused with 403 and changes nothing; the right credentials work",
  ...opts,
  fn: () =>
    withLan(1, 180_000, async (lan, tmp, scope) => {
      const { port, token, uploads, agent } = await startObservedApp(scope, lan, tmp);
      const jam = jamCommand("Pwned", "Mallory");
      const guess = guessToken(token), near = guessToken(token, true);
      const loop = `127.0.0.1:${port}`;

      // --- the control WebSocket ---
      const wsCases: Case[] = [
        ["no token", "/ws", {}],
        ["an empty token", "/ws?token=", {}],
        ["a wrong token", "/ws?token=letmein", {}],
        ["a guessed 32-digit token", `/ws?token=${guess}`, {}],
        ["the token but its last digit", `/ws?token=${near}`, {}],
        ["the token with a prefix only", `/ws?token=${token.slice(0, 16)}`, {}],
        ["the token in upper case", `/ws?token=${token.toUpperCase()}`, {}],
        ["the token twice over", `/ws?token=${token}${token}`, {}],
        ["the token in a header only", "/ws", { "X-PhaseLock-Token": token }],
        ["Host evil.example", `/ws?token=${token}`, { Host: `evil.example:${port}` }],
        ["Host without port", `/ws?token=${token}`, { Host: "127.0.0.1" }],
        ["Host with another port", `/ws?token=${token}`, { Host: `127.0.0.1:${port + 1}` }],
        ["Host 127.0.0.1.nip.io", `/ws?token=${token}`, { Host: `127.0.0.1.nip.io:${port}` }],
        ["Origin evil.example", `/ws?token=${token}`, { Origin: "http://evil.example" }],
        [
          "Origin of another loopback port",
          `/ws?token=${token}`,
          { Origin: `http://127.0.0.1:${port + 1}` },
        ],
        ["Origin null", `/ws?token=${token}`, { Origin: "null" }],
        [
          "Origin https on the right port",
          `/ws?token=${token}`,
          { Origin: `https://127.0.0.1:${port}` },
        ],
        [
          "a rebinding page (Host and Origin evil)",
          `/ws?token=${token}`,
          { Host: `evil.example:${port}`, Origin: `http://evil.example:${port}` },
        ],
      ];
      const before = agent.mark();
      await assertSocketsRefused(agent, port, wsCases, [
        jam.cmd,
        '{"cmd":"status"}',
        '{"cmd":"add-demo"}',
      ]);
      // Foreign names are refused for the UI itself too, not only for /ws.
      for (const path of ["/", "/app.js"]) {
        const r = await agent.call("rawHttp", {
          host: "127.0.0.1",
          port,
          path,
          headers: { Host: `evil.example:${port}` },
        });
        assertEquals(r.status, 403, `GET ${path} under a foreign Host: ${JSON.stringify(r)}`);
        assertTrue(!/<script|<html/i.test(r.body), "no UI under a foreign Host");
      }

      // --- POST /upload (a valid MP3: were it accepted, it would be queued) ---
      const upCases: Case[] = [
        ["no token", "/upload?name=evil.mp3", {}],
        ["a wrong token", "/upload?name=evil.mp3", { "X-PhaseLock-Token": "letmein" }],
        ["a guessed token", "/upload?name=evil.mp3", { "X-PhaseLock-Token": guess }],
        ["a near token", "/upload?name=evil.mp3", { "X-PhaseLock-Token": near }],
        ["the token in the query", `/upload?name=evil.mp3&token=${token}`, {}],
        [
          "Host evil.example",
          "/upload?name=evil.mp3",
          { "X-PhaseLock-Token": token, Host: `evil.example:${port}` },
        ],
        [
          "Origin evil.example",
          "/upload?name=evil.mp3",
          { "X-PhaseLock-Token": token, Origin: "http://evil.example" },
        ],
        [
          "Origin null",
          "/upload?name=evil.mp3",
          { "X-PhaseLock-Token": token, Origin: "null" },
        ],
      ];
      // Before the jam: refused with 403 (not 422 "create a jam first", which would mean the
      // credentials passed).
      await assertUploadsRefused(agent, port, upCases);

      // Nothing happened: no event reached the UI, no jam is listening, no file was kept.
      await sleep(1000);
      assertEquals(actions(agent.since(before)), [], "no event after the refused attempts");
      assertEquals(
        await agent.call("tcpConnect", "127.0.0.1", jam.port),
        "refused",
        "no jam was created",
      );
      // The legitimate client is heard (the app answers: no session yet).
      const m0 = agent.mark();
      assertTrue(await agent.call("ctlSend", '{"cmd":"status"}'), "the client is open");
      await agent.waitCtl(
        (e) => e.type === "error" && /Create or join/.test(String(e.message)),
        "the app's answer to status on Home",
        m0,
      );
      assertTrue(!agent.ctl().some((e) => e.type === "session"), "still on Home");
      assertEquals(await leftovers(uploads), [], "no uploaded file kept");
      // The right token passes the lock and meets the next check (no jam yet): 422, not 403.
      const early = await upload(agent, port, "/upload?name=early.mp3", {
        "X-PhaseLock-Token": token,
      });
      assertEquals(early.status, 422, JSON.stringify(early));
      assertTrue(/Create or join a jam first/.test(early.body), early.body);
      assertEquals(await leftovers(uploads), [], "the early upload is not kept");

      // Positive controls: the same probes with the right credentials do work.
      const ok = await agent.call("rawWs", {
        host: "127.0.0.1",
        port,
        path: `/ws?token=${token}`,
        headers: { Host: `localhost:${port}`, Origin: `http://localhost:${port}` },
        send: ['{"cmd":"status"}'],
      });
      assertEquals(ok.status, 101, `the right token over raw WebSocket: ${JSON.stringify(ok)}`);
      assertTrue(
        ok.messages.some((m: string) => JSON.parse(m).type === "home"),
        "the right token gets the state",
      );
      const ok2 = await agent.call("rawWs", {
        host: "127.0.0.1",
        port,
        path: `/ws?token=${token}`,
        headers: { Origin: `http://${loop}` },
        send: [],
      });
      assertEquals(ok2.status, 101, "the control server's own origin is allowed");
      await createJam(agent, jam);
      assertEquals(await agent.call("tcpConnect", "127.0.0.1", jam.port), "connected");

      // With a jam, refused uploads still add nothing, refused sockets still run nothing.
      const mark = agent.mark();
      const jamOpen = " (jam open)";
      await assertUploadsRefused(agent, port, upCases, jamOpen);
      const commands = ['{"cmd":"add-demo"}', '{"cmd":"play"}', '{"cmd":"leave"}'];
      await assertSocketsRefused(agent, port, wsCases, commands, jamOpen, 300);
      await assertNothingHappened(agent, mark, uploads, "no event after refused attempts");
      // …and the right token uploads (positive control for the upload probes).
      const up = await upload(agent, port, "/upload?name=good.mp3", {
        "X-PhaseLock-Token": token,
        Origin: `http://${loop}`,
      });
      assertEquals(up.status, 200, `the right token uploads: ${JSON.stringify(up)}`);
      assertEquals((await status(agent)).queueLength, 1, "the good upload is queued");
    }),
});

Deno.test({
  name: "uploads: over 50 MB is refused with 413 (streamed, declared or dropped midway) and the " +
    "partial file is removed; a file that is not an MP3 gets a sentence and queues nothing",
  ...opts,
  fn: () =>
    withLan(1, 240_000, async (lan, tmp, scope) => {
      const { port, token, uploads, agent } = await startObservedApp(scope, lan, tmp);
      await createJam(agent, jamCommand("Uploads", "Alex"));
      const limitMb = MAX_FILE_BYTES / MB;
      assertEquals(limitMb, 50);

      // Streamed without a length: the server counts and stops past the cap.
      const streamed = await agent.call("bigUpload", {
        port,
        token,
        totalBytes: MAX_FILE_BYTES + 10 * MB,
        mode: "chunked",
        watchDir: uploads,
      });
      assertTrue(!("error" in streamed.response), JSON.stringify(streamed));
      assertEquals(streamed.response.status, 413, JSON.stringify(streamed.response));
      assertTrue(
        new RegExp(`larger than ${limitMb} MB`).test(JSON.parse(streamed.response.body).error),
        streamed.response.body,
      );
      assertTrue(streamed.sent > MAX_FILE_BYTES, `sent ${streamed.sent}`);
      assertTrue(
        streamed.largestPartial > 10 * MB,
        `a partial file was being written (largest seen ${streamed.largestPartial} bytes)`,
      );
      assertTrue(streamed.largestPartial <= MAX_FILE_BYTES, "never more than the cap on disk");
      assertEquals(await leftovers(uploads), [], "the partial file is removed");

      // A declared length over the cap is refused before the body is read.
      const declared = await agent.call("bigUpload", {
        port,
        token,
        totalBytes: MAX_FILE_BYTES + MB,
        mode: "declared",
        watchDir: uploads,
      });
      assertEquals(declared.response.status, 413, JSON.stringify(declared.response));
      assertTrue(
        declared.sentAtResponse >= 0 && declared.sentAtResponse < MAX_FILE_BYTES / 2,
        `refused before the body (answered after ${declared.sentAtResponse} B)`,
      );
      assertEquals(declared.largestPartial, 0, "nothing was written for a declared length");
      assertEquals(await leftovers(uploads), [], "nothing kept for a declared length");

      // The uploader vanishes midway: the partial file goes too.
      const dropped = await agent.call("bigUpload", {
        port,
        token,
        totalBytes: 20 * MB,
        mode: "abort",
        abortAfter: 12 * MB,
        watchDir: uploads,
      });
      assertTrue(
        dropped.largestPartial > 0,
        `a partial file existed: ${dropped.largestPartial}`,
      );
      let left = await leftovers(uploads);
      for (let i = 0; i < 50 && left.length; i++) {
        await sleep(100);
        left = await leftovers(uploads);
      }
      assertEquals(left, [], "the dropped upload's partial file is removed");

      // Not an MP3: a sentence, nothing queued, nothing kept.
      const mark = agent.mark();
      const bad = await upload(
        agent,
        port,
        "/upload?name=notes.mp3",
        { "X-PhaseLock-Token": token },
        NOT_MP3,
      );
      assertEquals(bad.status, 422, JSON.stringify(bad));
      const sentence = JSON.parse(bad.body).error as string;
      assertTrue(/^Cannot use "notes\.mp3": .{10,}/.test(sentence), sentence);
      const shown = await agent.waitCtl((e) => e.type === "error", "the UI's error", mark);
      assertEquals(shown.message, sentence);
      assertEquals(await leftovers(uploads), [], "the rejected file is removed");
      const st = await status(agent);
      assertEquals(st.queueLength, 0, "nothing queued");
      assertTrue(!agent.since(mark).some((e) => e.type === "queue"), "no queue change");

      // Names that try to leave the upload folder: stored inside it (then refused as not an
      // MP3 and removed); nothing is written anywhere else.
      for (
        const name of [
          "../../evil.mp3",
          "../evil.mp3",
          "/tmp/evil.mp3",
          "..\\..\\evil.mp3",
          "a/../../../evil.mp3",
          "%2e%2e%2fevil.mp3",
        ]
      ) {
        const r = await upload(
          agent,
          port,
          `/upload?name=${encodeURIComponent(name)}`,
          { "X-PhaseLock-Token": token },
          NOT_MP3,
        );
        assertEquals(r.status, 422, `name ${name}: ${JSON.stringify(r)}`);
      }
      assertEquals(await leftovers(uploads), [], "the refused files are removed");
      const stray = (await listAll(tmp)).filter((e) => /evil/.test(e.path));
      assertEquals(stray, [], "nothing written outside the upload folder");

      // Positive control: a real MP3 of the same route is queued and kept.
      const good = await upload(agent, port, "/upload?name=tones.mp3", {
        "X-PhaseLock-Token": token,
      });
      assertEquals(good.status, 200, JSON.stringify(good));
      assertEquals((await status(agent)).queueLength, 1, "the MP3 is queued");
      assertEquals(await fileSizes(uploads), [(await Deno.stat(GOOD_MP3)).size]);
    }),
});

Deno.test({
  name: "from the LAN: the control port is unreachable and the jam port controls nothing " +
    "(no /upload, control commands on /ws are protocol errors, / is the browser peer's page, " +
    "not the app's UI)",
  ...opts,
  fn: () =>
    withLan(2, 180_000, async (lan, tmp, scope) => {
      // Default bind (0.0.0.0): the jam is on every interface; the control server must not be.
      const { app, port, token } = await startApp(scope, lan, 0, tmp);
      const host = new Agent(scope, lan, 0), mallory = new Agent(scope, lan, 1);
      await Promise.all([host.ready(), mallory.ready()]);
      await observeApp(host, port, token);
      const jam = jamCommand("LAN Jam", "Alex");
      const jamPort = jam.port;
      const session = await createJam(host, jam);
      const ip = lan.ip(0);
      assertEquals(session.host, ip, "the jam is announced on the LAN address");
      await host.call("ctlSend", '{"cmd":"add-demo"}');
      await host.waitCtl(
        (e) => e.type === "queue" && (e.tracks as unknown[])?.length === 1,
        "the demo queued",
      );

      // What listens in the host's namespace: the control port on loopback only.
      const ss = await new Deno.Command("ip", {
        args: [...lan.exec(0).slice(1), "ss", "-ltnH"],
        stdout: "piped",
      }).output();
      const listening = dec.decode(ss.stdout).split("\n").filter(Boolean)
        .map((l) => l.trim().split(/\s+/)[3]);
      assertTrue(listening.includes(`127.0.0.1:${port}`), listening.join(" "));
      assertEquals(
        listening.filter((a) => a.endsWith(`:${port}`)),
        [`127.0.0.1:${port}`],
        "the control port is bound to loopback only",
      );
      assertTrue(
        listening.includes(`0.0.0.0:${jamPort}`) || listening.includes(`*:${jamPort}`),
        `the jam listens on all interfaces: ${listening.join(" ")}`,
      );

      const mark = host.mark();
      // The other machine reaches the jam (positive control) but not the control server.
      assertEquals(await mallory.call("tcpConnect", ip, jamPort), "connected");
      assertEquals(await mallory.call("tcpConnect", ip, port), "refused", "control port");
      const viaLan = await mallory.call("wsTry", `ws://${ip}:${port}/ws?token=${token}`, [
        '{"cmd":"play"}',
      ], 3000);
      assertEquals(viaLan.opened, false, "no control WebSocket over the LAN");

      // The jam port: no upload route, with or without the (leaked) token.
      for (const headers of [{}, { "X-PhaseLock-Token": token }] as Record<string, string>[]) {
        const r = await upload(mallory, jamPort, "/upload?name=evil.mp3", headers, GOOD_MP3, ip);
        assertEquals(r.status, 404, `POST /upload on the jam port: ${JSON.stringify(r)}`);
      }
      // Its Host pretending to be the control server changes nothing either.
      const spoof = await upload(
        mallory,
        jamPort,
        "/upload?name=evil.mp3",
        { "X-PhaseLock-Token": token, Host: `127.0.0.1:${port}` },
        GOOD_MP3,
        ip,
      );
      assertEquals(spoof.status, 404, JSON.stringify(spoof));
      // Not the app's UI: `/` is the browser peer's page (a peer's screens, which control
      // nothing on the host), and the app's own bundle is not there.
      const root = await mallory.call("rawHttp", { host: ip, port: jamPort, path: "/" });
      assertEquals(root.status, 200);
      assertTrue(/src="\/peer\.js"/.test(root.body), `GET /: ${root.body.slice(0, 400)}`);
      assertTrue(!/app\.js|token/i.test(root.body), `GET /: ${root.body.slice(0, 400)}`);
      for (const path of ["/app.js", `/ws?token=${token}`]) {
        const r = await mallory.call("rawHttp", { host: ip, port: jamPort, path });
        assertTrue(r.status >= 400, `GET ${path} on the jam port: ${r.status}`);
        assertTrue(!/<script|function|cmd/.test(r.body), `GET ${path}: ${r.body.slice(0, 80)}`);
      }

      // The jam's /ws speaks the peer protocol: control commands are protocol errors.
      const commands = [
        '{"cmd":"play"}',
        '{"cmd":"skip"}',
        '{"cmd":"add","path":"/etc/passwd"}',
        jamCommand("Pwned", "M", jamPort + 1).cmd,
        '{"cmd":"leave"}',
        '{"cmd":"quit"}',
        "play",
      ];
      for (const cmd of commands) {
        for (const path of ["/ws", `/ws?token=${token}`]) {
          const r = await mallory.call("wsTry", `ws://${ip}:${jamPort}${path}`, [cmd], 4000);
          assertTrue(r.opened, `the peer socket opens (${cmd})`);
          assertEquals(r.closeCode, 1008, `${cmd} on ${path}: ${JSON.stringify(r)}`);
          assertTrue(
            r.messages.every((m: string) => !/"type":"(queue|playing|session)"/.test(m)),
            `no host state for ${cmd}: ${r.messages}`,
          );
        }
      }
      // The same over a raw socket that claims to be the control server's Host and Origin.
      const raw = await mallory.call("rawWs", {
        host: ip,
        port: jamPort,
        path: `/ws?token=${token}`,
        headers: { Host: `127.0.0.1:${port}`, Origin: `http://127.0.0.1:${port}` },
        send: ['{"cmd":"play"}'],
      });
      assertEquals([raw.status, raw.closeCode], [101, 1008], JSON.stringify(raw));
      // An admitted peer (a real hello) may not run control commands either.
      const hello = JSON.stringify({
        type: "hello",
        protocolVersion: PROTOCOL_VERSION,
        name: "Mallory",
        client: "native",
        audio: { backend: "null", device: false },
      });
      const peer = await mallory.call("wsTry", `ws://${ip}:${jamPort}/ws`, [
        hello,
        '{"cmd":"play"}',
        '{"type":"play"}',
        '{"cmd":"create","session":"X","name":"Y","port":1}',
      ], 3000);
      assertTrue(
        peer.messages.some((m: string) => JSON.parse(m).type === "welcome"),
        `the hello is welcomed: ${peer.messages.map((m: string) => m.slice(0, 60))}`,
      );
      assertTrue(
        peer.messages.filter((m: string) => /Message rejected/.test(m)).length >= 3,
        `control messages are rejected: ${peer.messages.map((m: string) => m.slice(0, 80))}`,
      );

      // Nothing happened on the host: still in the jam, not playing, no second jam.
      await sleep(1000);
      const happened = host.since(mark).filter((e) =>
        [
          "playing",
          "started",
          "paused",
          "stopped",
          "home",
          "session",
          "queue",
          "volume",
          "inbox",
          "error",
          "status",
        ].includes(e.type)
      );
      assertEquals(happened, [], "no control reached the host");
      assertEquals(await host.call("tcpConnect", "127.0.0.1", jamPort + 1), "refused");
      const st = await status(host);
      assertEquals([st.transport, st.queueLength], ["stopped", 1], JSON.stringify(st));
      assertEquals(
        await Promise.race([app.exited.then(() => "exited"), sleep(100).then(() => "on")]),
        "on",
        "the app did not quit",
      );

      // Positive control: the legitimate UI's play does start it (so the check can fail).
      const m2 = host.mark();
      await host.call("ctlSend", '{"cmd":"play"}');
      await host.waitCtl((e) => e.type === "playing", "playing from the UI", m2);
    }),
});

/**
 * The attacker's page: tries the control WebSocket and /upload with a guessed token and with
 * the real one (as if it had leaked), both loopback names, a no-cors POST, reading the UI, and
 * framing the UI with the token; then the same kinds of request against its own servers, which
 * allow them (positive controls). Results go to `/report` on its own server.
 */
const EVIL_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Free music</title>
<link rel="icon" href="data:,"></head>
<body><h1>Free music</h1><iframe id="ui" width="400" height="300"></iframe>
<script type="module">
const P = await (await fetch("/params")).json();
document.getElementById("ui").src = "http://127.0.0.1:" + P.ctrl + "/#token=" + P.real;
const out = {};
function tryWs(url) {
  return new Promise((resolve) => {
    const r = { opened: false, messages: 0 };
    let ws;
    try { ws = new WebSocket(url); } catch (e) { r.threw = String(e); return resolve(r); }
    const t = setTimeout(() => { ws.close(); resolve(r); }, 5000);
    ws.onopen = () => { r.opened = true; for (const c of P.commands) ws.send(c); };
    ws.onmessage = () => r.messages++;
    ws.onclose = (e) => { clearTimeout(t); r.code = e.code; resolve(r); };
  });
}
async function tryFetch(url, init) {
  try {
    const res = await fetch(url, init);
    let body = "";
    try { body = (await res.text()).slice(0, 200); } catch {}
    return { status: res.status, type: res.type, body };
  } catch (e) {
    return { error: String(e) };
  }
}
const mp3 = await (await fetch("/track.mp3")).arrayBuffer();
for (const host of ["127.0.0.1", "localhost"]) {
  const base = "http://" + host + ":" + P.ctrl;
  for (const [name, token] of [["guess", P.guess], ["real", P.real]]) {
    out["ws-" + name + "-" + host] = await tryWs("ws://" + host + ":" + P.ctrl + "/ws?token=" + token);
    out["upload-" + name + "-" + host] = await tryFetch(base + "/upload?name=evil.mp3", {
      method: "POST", headers: { "X-PhaseLock-Token": token }, body: mp3,
    });
  }
  out["upload-nocors-" + host] = await tryFetch(base + "/upload?name=evil.mp3&token=" + P.real, {
    method: "POST", mode: "no-cors", headers: { "X-PhaseLock-Token": P.real }, body: mp3,
  });
  out["read-ui-" + host] = await tryFetch(base + "/");
}
out.ownWs = await tryWs("ws://" + location.host + "/echo");
out.corsUpload = await tryFetch("http://127.0.0.1:" + P.cors + "/upload?name=x.mp3", {
  method: "POST", headers: { "X-PhaseLock-Token": P.real }, body: mp3,
});
await fetch("/report", { method: "POST", body: JSON.stringify(out) });
document.title = "reported";
</script></body></html>`;

/** A Chromium launcher that runs Debian's Chromium inside namespace `i` (over Playwright's pipe). */
async function chromiumIn(scope: Scope, lan: Lan, i: number, tmp: string) {
  const wrapper = `${tmp}/chromium-in-ns.sh`;
  await Deno.writeTextFile(
    wrapper,
    `#!/bin/sh\nexec ${lan.exec(i).join(" ")} /usr/bin/chromium "$@"\n`,
  );
  await Deno.chmod(wrapper, 0o755);
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: wrapper,
    headless: true,
    args: [
      "--no-sandbox",
      "--no-first-run",
      "--password-store=basic",
      // DNS rebinding, simulated: a foreign name that resolves to this machine.
      "--host-resolver-rules=MAP evil.example 127.0.0.1",
    ],
    timeout: 60_000,
  });
  scope.defer(() => browser.close());
  return browser;
}

Deno.test({
  name: "a web page on another origin (or a rebinding name) in Chromium cannot drive the app, " +
    "even with the real token; the app's own page can",
  ...opts,
  fn: () =>
    withLan(1, 240_000, async (lan, tmp, scope) => {
      const { port, token, uploads, agent } = await startObservedApp(scope, lan, tmp);
      await createJam(agent, jamCommand("Browser Jam", "Alex"));
      const browser = await chromiumIn(scope, lan, 0, tmp);

      // Positive control: the app's own page, with the token, shows the jam.
      const own = await (await browser.newContext()).newPage();
      await own.goto(`http://127.0.0.1:${port}/#token=${token}`);
      await own.getByRole("heading", { name: "Browser Jam" }).waitFor({ timeout: 20000 });
      await own.context().close();

      // The attacker's page on another loopback port.
      const commands = [
        '{"cmd":"add-demo"}',
        '{"cmd":"play"}',
        '{"cmd":"status"}',
        '{"cmd":"leave"}',
      ];
      const evil = await agent.call("serveEvil", {
        ctrl: port,
        guess: guessToken(token),
        real: token,
        commands,
      }, EVIL_PAGE);
      const mark = agent.mark();
      const page = await (await browser.newContext()).newPage();
      await page.goto(`http://127.0.0.1:${evil.port}/`);
      const report = await agent.proc.waitFor((e) => e.type === "report", 60000, "the report");
      const r = report.results as Record<string, Record<string, unknown>>;
      const seen = JSON.stringify(r, null, 1);

      // Positive controls: this browser does open a WebSocket from the page, and does send
      // a cross-origin POST with the token header to a loopback port that allows it.
      assertTrue(r.ownWs.opened, `the page's own WebSocket opens: ${seen}`);
      assertEquals(r.corsUpload.status, 200, seen);
      const hit = await agent.proc.waitFor((e) => e.type === "cors-hit", 5000, "the CORS hit");
      assertEquals(hit.token, token);
      assertEquals(hit.origin, `http://127.0.0.1:${evil.port}`);

      for (const host of ["127.0.0.1", "localhost"]) {
        for (const name of ["guess", "real"]) {
          const ws = r[`ws-${name}-${host}`];
          assertEquals(ws.opened, false, `WebSocket (${name} token, ${host}): ${seen}`);
          assertEquals(ws.messages, 0);
          const up = r[`upload-${name}-${host}`];
          assertTrue(
            up.error !== undefined || up.status === 403,
            `upload (${name} token, ${host}) must fail: ${seen}`,
          );
        }
        // no-cors: sent without the header (the browser drops it), unreadable either way.
        const nc = r[`upload-nocors-${host}`];
        assertTrue(nc.error !== undefined || nc.status === 0, seen);
        const read = r[`read-ui-${host}`];
        assertTrue(read.error !== undefined, `the UI is not readable cross-origin: ${seen}`);
      }
      // Framing the UI with the token: refused (X-Frame-Options), so no UI ran in the frame.
      const framed = page.frames().filter((f) => f !== page.mainFrame());
      assertEquals(framed.length, 1);
      assertTrue(
        !framed[0].url().startsWith(`http://127.0.0.1:${port}`),
        `the framed UI is blocked: ${framed[0].url()}`,
      );

      // DNS rebinding: a page whose own name now points at the control port. Same origin
      // to the browser, so it could read answers — but the app refuses the foreign Host.
      const rebound = await (await browser.newContext()).newPage();
      const first = await rebound.goto(`http://evil.example:${port}/`);
      assertEquals(first?.status(), 403, "the UI is not served under a foreign name");
      const inside = await rebound.evaluate(
        async ({ real, port, commands }) => {
          const up = await fetch("/upload?name=evil.mp3", {
            method: "POST",
            headers: { "X-PhaseLock-Token": real },
            body: new Uint8Array(1000),
          }).then((x) => x.status, (e) => String(e));
          const js = await fetch("/app.js").then((x) => x.status, (e) => String(e));
          const ws = await new Promise((resolve) => {
            const s = new WebSocket(`ws://evil.example:${port}/ws?token=${real}`);
            s.onopen = () => {
              for (const c of commands) s.send(c);
              resolve("opened");
            };
            s.onclose = () => resolve("closed");
          });
          return { up, js, ws };
        },
        { real: token, port, commands },
      );
      assertEquals(inside, { up: 403, js: 403, ws: "closed" });

      // Nothing happened: no event, nothing queued, no file kept, the jam still there.
      await assertNothingHappened(agent, mark, uploads, "no event from the attacks");
    }),
});
