/**
 * Headless mode: one command per line on stdin (words or JSON), one JSON event per line on
 * stdout, sentences on stderr. The same commands and events the app's window uses.
 */
import type { LogFile } from "../log/log_file.ts";
import { browse } from "../net/discovery.ts";
import { type EngineEvent, parseCommand } from "../session/commands.ts";
import { HostEngine } from "../session/host.ts";
import { PeerEngine } from "../session/peer.ts";
import type { PeerPageAssets } from "../server/http.ts";
import {
  cacheDir,
  clockOf,
  EXIT,
  maxPeersOf,
  need,
  outputOf,
  portOf,
  UsageError,
} from "./options.ts";
import { ensureBundle, loadPeerAssets } from "./ui_assets.ts";

/** Prints events as JSON lines on stdout, human sentences on stderr; both go to the log. */
function outputs(logFile: LogFile) {
  return {
    out: (e: EngineEvent) => {
      console.log(JSON.stringify(e));
      logFile.write(e);
    },
    log: (s: string) => {
      console.error(`[phaselock] ${s}`);
      logFile.write({ type: "log", message: s });
    },
  };
}

/**
 * Reads commands from stdin, passing each to `run`, until `run` says stop or `stop` settles.
 * End of input is not a quit: `phaselock join … < /dev/null` stays in the jam until a signal.
 */
async function commandLoop(run: (line: string) => Promise<boolean>, stop: Promise<unknown>) {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const ended = stop.then(() => null);
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
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() && !(await run(line))) return;
    }
    if (buf.length > 65536) buf = ""; // an endless line is not a command
  }
}

/**
 * The page browsers open to join, built first if a source is newer (read once: the jam server
 * serves it from memory). Without it the jam still runs for the app's peers, so a page that
 * cannot be built costs a sentence, not the jam.
 */
async function peerPage(log: (s: string) => void) {
  try {
    await ensureBundle({ only: ["peer", "decodeWorker"] });
    const assets = await loadPeerAssets();
    return (): Promise<PeerPageAssets> => Promise.resolve(assets);
  } catch (e) {
    log(`Browsers cannot join this jam: ${(e as Error).message}`);
    return undefined;
  }
}

/** `phaselock host --headless`: a jam driven by commands on stdin. */
export async function runHost(
  flags: Record<string, unknown>,
  files: string[],
  logFile: LogFile,
): Promise<number> {
  const { out, log } = outputs(logFile);
  const session = need(flags, "name"), name = need(flags, "as");
  const port = portOf(flags);
  const maxPeers = maxPeersOf(flags);
  const page = await peerPage(log);
  const engine = new HostEngine(
    {
      session,
      name,
      port,
      hostname: flags.bind as string | undefined,
      advertise: !flags["no-advertise"],
      maxPeers,
      peerPage: page,
      requestDir: cacheDir(flags, "requests"),
      mic: flags.mic as string | undefined,
      ...outputOf(flags),
    },
    clockOf(flags),
    out,
  );
  try {
    await engine.start();
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      out({
        type: "error",
        message: `Port ${port} is already in use. Choose another with --port.`,
      });
      return EXIT.failure;
    }
    throw e;
  }
  log(`hosting "${session}" on port ${port}`);
  // With no LAN address (or --bind 127.0.0.1) the page is still there, for this machine only.
  if (page) {
    log(
      /^http:\/\/(127\.|\[::1\])/.test(engine.joinUrl)
        ? `Only a browser on this machine can join, at ${engine.joinUrl}: no LAN address to offer`
        : `Phones and laptops join at ${engine.joinUrl} (open it in a browser)`,
    );
  }
  for (const f of files) await engine.add(f);
  let quit!: () => void;
  const quitting = new Promise<void>((r) => quit = r);
  const onSignal = () => quit();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await commandLoop(async (line) => {
    logFile.write({ type: "command", line: line.slice(0, 1000) });
    const c = parseCommand(line);
    if ("error" in c) {
      out({ type: "error", message: c.error });
      return true;
    }
    if (c.cmd === "quit") return false;
    await engine.run(c);
    return true;
  }, quitting);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  await engine.stop();
  out({ type: "quit" });
  return EXIT.ok;
}

/** `phaselock join --headless`: a peer driven by commands on stdin. */
export async function runJoin(
  flags: Record<string, unknown>,
  positional: string[],
  logFile: LogFile,
): Promise<number> {
  const { out, log } = outputs(logFile);
  const name = need(flags, "as");
  let hostname: string, port: number;
  if (flags.discover !== undefined) {
    if (positional.length) throw new UsageError("Give either HOST:PORT or --discover, not both.");
    const wanted = flags.discover as string;
    log(wanted ? `looking for "${wanted}" on the LAN…` : "looking for a jam on the LAN…");
    let jam;
    for (let i = 0; i < 5 && !jam; i++) {
      jam = (await browse(1500)).find((j) => !wanted || j.session === wanted);
    }
    if (!jam) {
      out({
        type: "error",
        message: wanted ? `No jam named "${wanted}" found on the LAN.` : "No jam found on the LAN.",
      });
      return EXIT.failure;
    }
    hostname = jam.address;
    port = jam.port;
  } else {
    const target = positional[0];
    const m = target && /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(target);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new UsageError(
        `Give the host as HOST:PORT (e.g. 192.168.1.20:7420) or use --discover${
          target ? `; got "${target}"` : ""
        }.`,
      );
    }
    if (positional.length > 1) throw new UsageError(`Unexpected argument "${positional[1]}".`);
    hostname = m[1].replace(/^\[|\]$/g, "");
    port = Number(m[2]);
  }
  const engine = new PeerEngine(
    {
      hostname,
      port,
      name,
      cacheDir: cacheDir(flags, "tracks"),
      ...outputOf(flags),
    },
    clockOf(flags),
    out,
  );
  try {
    await engine.start();
  } catch (e) {
    const refused = await Promise.race([engine.ended, Promise.resolve(null)]);
    if (refused !== "refused") out({ type: "error", message: (e as Error).message });
    await engine.stop();
    return refused === "refused" ? EXIT.refused : EXIT.failure;
  }
  log(`joined ${hostname}:${port} as ${engine.name}`);
  const onSignal = () => engine.run({ cmd: "quit" });
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await commandLoop((line) => {
    logFile.write({ type: "command", line: line.slice(0, 1000) });
    const c = parseCommand(line);
    if ("error" in c) out({ type: "error", message: c.error });
    else engine.run(c);
    return Promise.resolve(!("cmd" in c && c.cmd === "quit"));
  }, engine.ended);
  const why = await Promise.race([engine.ended, Promise.resolve("quit" as const)]);
  await engine.stop();
  out({ type: "quit" });
  return why === "host-gone" ? EXIT.hostGone : EXIT.ok;
}
