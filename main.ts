/**
 * PhaseLock command line: parses arguments, wires the components, runs headless.
 *   phaselock host --headless --name "Friday Night" --as Alex [--port 7420] [FILE.mp3 …]
 *   phaselock join --headless (HOST:PORT | --discover [SESSION]) --as Sam
 *   phaselock list
 */
import { SINK_BACKENDS, type SinkBackend } from "./audio/sink.ts";
import { defaultLogPath, LogFile } from "./log/log_file.ts";
import { browse } from "./net/discovery.ts";
import { makeLocalClock } from "./net/local_clock.ts";
import { type EngineEvent, parseCommand } from "./session/commands.ts";
import {
  CHANNEL_MODES,
  delayProblem,
  type DeviceSettings,
  isChannelMode,
  SettingsStore,
} from "./session/device_settings.ts";
import { HostEngine } from "./session/host.ts";
import { PeerEngine } from "./session/peer.ts";

export const EXIT = { ok: 0, failure: 1, usage: 2, hostGone: 3, refused: 4 } as const;

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `PhaseLock — many devices, one sound.

Usage:
  phaselock host --headless --name SESSION --as NAME [--port 7420] [FILE.mp3 …]
  phaselock join --headless (HOST:PORT | --discover [SESSION]) --as NAME
  phaselock list
  phaselock COMMAND --help

Headless mode reads one command per line on stdin (words or JSON) and prints one JSON event
per line on stdout; human-readable logs go to stderr.`,
  host: `phaselock host --headless --name SESSION --as NAME [options] [FILE.mp3 …]

Creates a jam, advertises it on the LAN and queues the files given.
  --name SESSION            session name shown to peers (required)
  --as NAME                 your display name (required)
  --port N                  TCP port for control and files, UDP port for clock (default 7420)
  --bind ADDRESS            address to listen on (default 0.0.0.0)
  --audio BACKEND           auto | pulse | portaudio | null | wav (default auto)
  --wav-out FILE            output file for --audio wav
  --no-advertise            do not announce the jam by mDNS
  --cache-dir DIR           where accepted song requests are kept
  --speaker-delay-ms MS     this device's speaker latency, 0–500 (remembered per device)
  --channel MODE            stereo | left | right | mono (remembered per device)
  --config-dir DIR          where speaker settings are remembered
  --log-file FILE           where this machine's log goes (default: the OS log folder)
  --log-max-bytes N         log size cap; oldest entries are dropped past it (default 20 MB)
  --sim-clock-offset-ms MS  testing aid: make this process's clock wrong by MS
  --sim-clock-skew-ppm PPM  testing aid: make this process's clock run PPM fast

Commands on stdin: add PATH, play, pause, resume, stop, seek SECONDS, skip, queue,
move FROM TO, remove N (positions as listed by queue, from 1), inbox, accept ID, reject ID,
retry PEER, skip-peer PEER, volume 0..1, mute, unmute, delay MS, channel MODE,
channel PEER MODE, status, quit — or JSON, e.g. {"cmd":"seek","seconds":42}.`,
  join: `phaselock join --headless (HOST:PORT | --discover [SESSION]) --as NAME [options]

Joins a jam directly or by LAN discovery (the first jam, or the first named SESSION).
  --as NAME                 your display name (required)
  --audio BACKEND           auto | pulse | portaudio | null | wav (default auto)
  --wav-out FILE            output file for --audio wav
  --cache-dir DIR           where received tracks are kept
  --speaker-delay-ms MS     this device's speaker latency, 0–500 (remembered per device)
  --channel MODE            stereo | left | right | mono (remembered per device)
  --config-dir DIR          where speaker settings are remembered
  --log-file FILE           where this machine's log goes (default: the OS log folder)
  --log-max-bytes N         log size cap; oldest entries are dropped past it (default 20 MB)
  --sim-clock-offset-ms MS  testing aid: make this process's clock wrong by MS
  --sim-clock-skew-ppm PPM  testing aid: make this process's clock run PPM fast

Commands on stdin: queue, request PATH (offer a song to the host), volume 0..1, mute, unmute,
delay MS, channel MODE, status, quit. Exits with code 3 when the host goes away ("Host
disconnected — session ended"), 4 when it refuses the join.`,
  list: `phaselock list [--timeout-ms 2000]

Prints the jams discovered on the LAN as a JSON array.`,
};

type Spec = Record<string, "string" | "number" | "boolean" | "optional-string">;

const COMMON: Spec = {
  help: "boolean",
  headless: "boolean",
  as: "string",
  audio: "string",
  "wav-out": "string",
  "sim-clock-offset-ms": "number",
  "sim-clock-skew-ppm": "number",
  "speaker-delay-ms": "number",
  channel: "string",
  "config-dir": "string",
  "log-file": "string",
  "log-max-bytes": "number",
};
const SPECS: Record<string, Spec> = {
  host: {
    ...COMMON,
    name: "string",
    port: "number",
    bind: "string",
    "no-advertise": "boolean",
    "cache-dir": "string",
  },
  join: { ...COMMON, discover: "optional-string", "cache-dir": "string" },
  list: { help: "boolean", "timeout-ms": "number" },
};

/** Parses `--flag value` arguments against a spec; throws UsageError with one line. */
export function parseFlags(args: string[], spec: Spec) {
  const flags: Record<string, string | number | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const key = a.slice(2, eq < 0 ? undefined : eq);
    const kind = spec[key];
    if (!kind) throw new UsageError(`Unknown option --${key}. See --help.`);
    if (kind === "boolean") {
      if (eq >= 0) throw new UsageError(`--${key} takes no value.`);
      flags[key] = true;
      continue;
    }
    let value: string | undefined = eq >= 0 ? a.slice(eq + 1) : undefined;
    if (value === undefined) {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        value = next;
        i++;
      } else if (kind === "optional-string") {
        value = "";
      } else throw new UsageError(`--${key} needs a value.`);
    }
    if (kind === "number") {
      const n = Number(value);
      if (value.trim() === "" || !Number.isFinite(n)) {
        throw new UsageError(`--${key} must be a number, not "${value}".`);
      }
      flags[key] = n;
    } else flags[key] = value;
  }
  return { flags, positional };
}

function need(flags: Record<string, unknown>, key: string): string {
  const v = flags[key];
  if (typeof v !== "string" || v.trim() === "") throw new UsageError(`--${key} is required.`);
  return v;
}

function backendOf(flags: Record<string, unknown>): SinkBackend | "auto" {
  const b = (flags.audio as string | undefined) ?? "auto";
  if (b !== "auto" && !SINK_BACKENDS.includes(b as SinkBackend)) {
    throw new UsageError(`--audio must be one of auto, ${SINK_BACKENDS.join(", ")}; got "${b}".`);
  }
  if (b === "wav" && !flags["wav-out"]) throw new UsageError("--audio wav needs --wav-out FILE.");
  return b as SinkBackend | "auto";
}

function clockOf(flags: Record<string, unknown>) {
  return makeLocalClock({
    offsetMs: (flags["sim-clock-offset-ms"] as number | undefined) ?? 0,
    skewPpm: (flags["sim-clock-skew-ppm"] as number | undefined) ?? 0,
  });
}

/** Speaker settings given on the command line (they override the remembered ones). */
function deviceOf(flags: Record<string, unknown>): Partial<DeviceSettings> {
  const out: Partial<DeviceSettings> = {};
  const d = flags["speaker-delay-ms"];
  if (d !== undefined) {
    const bad = delayProblem(d as number);
    if (bad) throw new UsageError(`--speaker-delay-ms: ${bad}`);
    out.speakerDelayMs = d as number;
  }
  const c = flags.channel;
  if (c !== undefined) {
    if (!isChannelMode(c)) {
      throw new UsageError(`--channel must be one of ${CHANNEL_MODES.join(", ")}; got "${c}".`);
    }
    out.channel = c;
  }
  return out;
}

function settingsStore(flags: Record<string, unknown>): SettingsStore {
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".";
  let dir = flags["config-dir"] as string | undefined;
  if (!dir) {
    if (Deno.build.os === "windows") dir = `${Deno.env.get("APPDATA") ?? home}\\PhaseLock`;
    else if (Deno.build.os === "darwin") dir = `${home}/Library/Application Support/PhaseLock`;
    else dir = `${Deno.env.get("XDG_CONFIG_HOME") ?? `${home}/.config`}/phaselock`;
  }
  return new SettingsStore(`${dir}/settings.json`);
}

/** The audio output options host and peer share. */
function outputOf(flags: Record<string, unknown>) {
  return {
    audio: backendOf(flags),
    wavPath: flags["wav-out"] as string | undefined,
    device: deviceOf(flags),
    settings: settingsStore(flags),
  };
}

/** `--cache-dir`, or the OS cache folder: `tracks` (received) and `requests` (accepted). */
function cacheDir(flags: Record<string, unknown>, sub: "tracks" | "requests"): string {
  const given = flags["cache-dir"] as string | undefined;
  if (given) return sub === "tracks" ? given : `${given}/${sub}`;
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".";
  if (Deno.build.os === "windows") {
    return `${Deno.env.get("LOCALAPPDATA") ?? home}\\PhaseLock\\${sub}`;
  }
  if (Deno.build.os === "darwin") return `${home}/Library/Caches/PhaseLock/${sub}`;
  return `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/phaselock/${sub}`;
}

/** This machine's log file; every event and command goes to it as well as to stdout. */
let logFile: LogFile | null = null;

function openLog(flags: Record<string, unknown>, role: string) {
  const max = flags["log-max-bytes"] as number | undefined;
  if (max !== undefined && (!Number.isInteger(max) || max < 1024)) {
    throw new UsageError(`--log-max-bytes must be a whole number ≥ 1024, not ${max}.`);
  }
  logFile = new LogFile((flags["log-file"] as string | undefined) ?? defaultLogPath(), {
    maxBytes: max,
    context: { role, pid: Deno.pid },
  });
}

const out = (e: EngineEvent) => {
  console.log(JSON.stringify(e));
  logFile?.write(e);
};
const log = (s: string) => {
  console.error(`[phaselock] ${s}`);
  logFile?.write({ type: "log", message: s });
};

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

async function runHost(flags: Record<string, unknown>, files: string[]): Promise<number> {
  const session = need(flags, "name"), name = need(flags, "as");
  const port = (flags.port as number | undefined) ?? 7420;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--port must be a whole number from 1 to 65535, not ${port}.`);
  }
  const engine = new HostEngine(
    {
      session,
      name,
      port,
      hostname: flags.bind as string | undefined,
      advertise: !flags["no-advertise"],
      requestDir: cacheDir(flags, "requests"),
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
  for (const f of files) await engine.add(f);
  let quit!: () => void;
  const quitting = new Promise<void>((r) => quit = r);
  const onSignal = () => quit();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await commandLoop(async (line) => {
    logFile?.write({ type: "command", line: line.slice(0, 1000) });
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

async function runJoin(flags: Record<string, unknown>, positional: string[]): Promise<number> {
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
    logFile?.write({ type: "command", line: line.slice(0, 1000) });
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

export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  try {
    if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
      console.log(HELP.main);
      return cmd ? EXIT.ok : EXIT.usage;
    }
    const spec = SPECS[cmd];
    if (!spec) {
      throw new UsageError(`Unknown command "${cmd}". Use host, join or list (see --help).`);
    }
    const { flags, positional } = parseFlags(rest, spec);
    if (flags.help) {
      console.log(HELP[cmd]);
      return EXIT.ok;
    }
    if (cmd === "list") {
      if (positional.length) throw new UsageError(`Unexpected argument "${positional[0]}".`);
      const jams = await browse((flags["timeout-ms"] as number | undefined) ?? 2000);
      console.log(JSON.stringify(jams));
      return EXIT.ok;
    }
    if (!flags.headless) {
      throw new UsageError("The desktop window is not available in this version: add --headless.");
    }
    openLog(flags, cmd);
    return cmd === "host" ? await runHost(flags, positional) : await runJoin(flags, positional);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`phaselock: ${e.message}`);
      return EXIT.usage;
    }
    out({ type: "error", message: (e as Error).message });
    return EXIT.failure;
  } finally {
    await logFile?.close();
    if (logFile?.failure) {
      console.error(
        `[phaselock] could not write the log ${logFile.path}: ${logFile.failure.message}`,
      );
    }
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
