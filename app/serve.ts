/**
 * `phaselock serve --headless`: the swarm server ({@link startSwarmServer}) from the command
 * line. One JSON event per line on stdout (`serving` once listening, `status`, `quit`),
 * sentences on stderr, everything in the log. Stops on SIGINT, SIGTERM or `quit` on stdin;
 * end of input is not a quit (`… < /dev/null` runs until a signal), as in headless mode.
 */
import type { LogFile } from "../log/log_file.ts";
import { lanAddresses } from "../net/discovery.ts";
import type { IceServer } from "../swarm/protocol.ts";
import {
  DEFAULT_SWARM_PORT,
  startSwarmServer,
  type SwarmLogEntry,
  type SwarmPageAssets,
} from "../swarm/server.ts";
import { EXIT, UsageError } from "./options.ts";
import { ensureBundle, loadSwarmAssets } from "./ui_assets.ts";

/** ICE servers one welcome may carry (the protocol's cap). */
export const MAX_ICE_SERVERS = 16;

/** `--port`: 0 to 65535, 0 picking a free port (default 7430). */
export function servePortOf(flags: Record<string, unknown>): number {
  const port = (flags.port as number | undefined) ?? DEFAULT_SWARM_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(
      `--port must be a whole number from 0 to 65535 (0 picks a free port), not ${port}.`,
    );
  }
  return port;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(\?transport=(?:udp|tcp))?$/;

/**
 * One `--ice-server`: `stun:HOST[:PORT]`, `turn:HOST[:PORT]` or `turns:HOST[:PORT]` (TURN may
 * end in `?transport=udp|tcp`), with TURN's credentials as `turn:USER:PASSWORD@HOST:PORT`
 * (percent-escape an `@` or `:` in the user name). Browsers refuse TURN without credentials,
 * so that is refused here, with a sentence, rather than in every page.
 */
export function parseIceServer(text: string): IceServer {
  const bad = (why: string) => new UsageError(`--ice-server "${text.slice(0, 80)}": ${why}`);
  const m = /^(stun|turn|turns):(.*)$/i.exec(text.trim());
  if (!m) {
    throw bad("give stun:HOST:PORT, turn:HOST:PORT or turns:HOST:PORT (TURN with USER:PASSWORD@).");
  }
  const scheme = m[1].toLowerCase();
  let rest = m[2];
  let username: string | undefined, credential: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    if (scheme === "stun") throw bad("a STUN server takes no user name or password.");
    const creds = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = creds.indexOf(":");
    if (colon <= 0 || colon === creds.length - 1) {
      throw bad("credentials go as USER:PASSWORD@HOST:PORT.");
    }
    try {
      username = decodeURIComponent(creds.slice(0, colon));
      credential = decodeURIComponent(creds.slice(colon + 1));
    } catch {
      throw bad("the user name or password has a broken %-escape.");
    }
    if (username.length > 256 || credential.length > 256) {
      throw bad("the user name and password may have 256 characters each.");
    }
  }
  const hp = HOST_PORT.exec(rest);
  if (!hp) throw bad("the address should be HOST or HOST:PORT (an IPv6 address in brackets).");
  if (hp[2] !== undefined && (Number(hp[2]) < 1 || Number(hp[2]) > 65535)) {
    throw bad(`port ${hp[2]} is not from 1 to 65535.`);
  }
  if (hp[3] && scheme === "stun") throw bad("?transport= is for TURN servers only.");
  if (scheme !== "stun" && username === undefined) {
    throw bad(`browsers need a user name and password for TURN: ${scheme}:USER:PASSWORD@${rest}.`);
  }
  const urls = `${scheme}:${rest}`;
  if (urls.length > 512) throw bad("the address is longer than 512 characters.");
  return username === undefined ? { urls } : { urls, username, credential };
}

/** Every `--ice-server`, in order (none: members only reach each other on the same network). */
export function iceServersOf(flags: Record<string, unknown>): IceServer[] {
  const raw = flags["ice-server"];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw as string[] : [String(raw)];
  if (list.length > MAX_ICE_SERVERS) {
    throw new UsageError(`Give at most ${MAX_ICE_SERVERS} --ice-server options.`);
  }
  return list.map(parseIceServer);
}

/**
 * `--tls-cert` and `--tls-key`: both or neither. Files that cannot be read, or do not hold PEM,
 * fail with a sentence naming the file.
 */
export async function tlsOf(
  flags: Record<string, unknown>,
): Promise<{ cert: string; key: string } | undefined> {
  const certFile = flags["tls-cert"] as string | undefined;
  const keyFile = flags["tls-key"] as string | undefined;
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (!certFile || !keyFile) {
    throw new UsageError(
      "--tls-cert and --tls-key go together: give the certificate chain and its private key " +
        "(PEM files).",
    );
  }
  const read = (file: string, what: string) =>
    Deno.readTextFile(file).catch((e) => {
      throw new Error(`Cannot read the TLS ${what} "${file}": ${(e as Error).message}`);
    });
  // One after the other: when both are missing, the certificate is named, every time.
  const cert = await read(certFile, "certificate");
  const key = await read(keyFile, "key");
  if (!cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(
      `The TLS certificate "${certFile}" is not a PEM certificate ` +
        `(no "-----BEGIN CERTIFICATE-----" line).`,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new Error(
      `The TLS key "${keyFile}" is not a PEM private key (no "-----BEGIN … PRIVATE KEY-----" line).`,
    );
  }
  return { cert, key };
}

/** `http(s)://HOST:PORT/`, an IPv6 host in brackets. */
function urlFor(tls: boolean, host: string, port: number): string {
  const h = host.includes(":") ? `[${host.replace("%", "%25")}]` : host;
  return `${tls ? "https" : "http"}://${h}:${port}/`;
}

/**
 * The swarm page, built first if a source is newer, read once. Without it the server still
 * introduces native members, so a page that cannot be built costs a sentence, not the server.
 */
async function swarmPage(
  log: (s: string) => void,
): Promise<(() => Promise<SwarmPageAssets>) | undefined> {
  try {
    await ensureBundle({ only: ["swarm", "decodeWorker"] });
    const assets = await loadSwarmAssets();
    return () => Promise.resolve(assets);
  } catch (e) {
    log(`Browsers cannot open the swarm page: ${(e as Error).message}`);
    return undefined;
  }
}

/** Reads stdin lines until `run` says stop or `stop` settles; end of input waits for `stop`. */
async function commandLoop(run: (line: string) => boolean, stop: Promise<void>) {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  const ended = stop.then(() => null);
  let buf = "";
  while (true) {
    const r = await Promise.race([lines.read(), ended]);
    if (r === null) return;
    if (r.done) {
      await stop;
      return;
    }
    buf += r.value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line && !run(line)) return;
    }
    if (buf.length > 65536) buf = ""; // an endless line is not a command
  }
}

/** `phaselock serve --headless`: the swarm server until a signal or `quit`. */
export async function runServe(flags: Record<string, unknown>, logFile: LogFile): Promise<number> {
  const port = servePortOf(flags);
  const hostname = (flags.bind as string | undefined) ?? "0.0.0.0";
  const iceServers = iceServersOf(flags);
  const tls = await tlsOf(flags);
  const out = (e: Record<string, unknown>) => {
    console.log(JSON.stringify(e));
    logFile.write(e);
  };
  const log = (s: string) => {
    console.error(`[phaselock] ${s}`);
    logFile.write({ type: "log", message: s });
  };
  const serverLog = (e: SwarmLogEntry) => {
    logFile.write(e);
    // Refused frames go to the log only: a misbehaving page must not flood the terminal.
    if (e.type !== "swarm-error") console.error(`[phaselock] ${e.message}`);
  };
  const assets = await swarmPage(log);
  let server;
  try {
    server = await startSwarmServer({ port, hostname, tls, iceServers, assets, log: serverLog });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      out({
        type: "error",
        message: `Port ${port} is already in use. Choose another with --port.`,
      });
      return EXIT.failure;
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      out({ type: "error", message: `This machine has no address ${hostname} to listen on.` });
      return EXIT.failure;
    }
    if (tls) {
      out({
        type: "error",
        message: `Cannot serve HTTPS with the certificate "${flags["tls-cert"]}" and key ` +
          `"${flags["tls-key"]}": ${(e as Error).message}`,
      });
      return EXIT.failure;
    }
    throw e;
  }
  const any = hostname === "0.0.0.0" || hostname === "::" || hostname === "";
  const host = any ? lanAddresses()[0] ?? "127.0.0.1" : hostname;
  const url = urlFor(!!tls, host, server.port);
  out({ type: "serving", url, port: server.port, tls: !!tls });
  log(
    `Swarm server on ${any ? "every interface" : hostname}, port ${server.port}: ` +
      `browsers join at ${url}` +
      (iceServers.length
        ? ` (ICE servers: ${
          iceServers.map((s) => s.urls + (s.username ? " with credentials" : "")).join(", ")
        })`
        : " (no ICE servers: members reach each other on the same network only)"),
  );
  if (!tls) {
    log(
      "Serving plain HTTP: fine on a LAN or behind a TLS-terminating proxy, but phones need " +
        "HTTPS for some features (keeping the screen on, for one); give --tls-cert and " +
        "--tls-key to serve HTTPS.",
    );
  }
  let quit!: () => void;
  const quitting = new Promise<void>((r) => quit = r);
  const onSignal = () => quit();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await commandLoop((line) => {
      let cmd = line;
      if (line.startsWith("{")) {
        try {
          cmd = String((JSON.parse(line) as { cmd?: unknown }).cmd ?? "");
        } catch {
          cmd = "";
        }
      }
      logFile.write({ type: "command", line: line.slice(0, 1000) });
      if (cmd === "quit") return false;
      if (cmd === "status") out({ type: "status", ...server.stats() });
      else {out({
          type: "error",
          message: `Unknown command "${cmd.slice(0, 40)}". Use status or quit.`,
        });}
      return true;
    }, quitting);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await server.close();
  }
  out({ type: "quit" });
  return EXIT.ok;
}
