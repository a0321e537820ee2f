/**
 * PhaseLock command line: parses arguments and wires the parts; nothing else.
 *   phaselock [--no-window] [options]          the app: a window on the Home screen
 *   phaselock host --headless --name "Friday Night" --as Alex [--port 7420] [FILE.mp3 …]
 *   phaselock join --headless (HOST:PORT | --discover [SESSION]) --as Sam
 *   phaselock serve --headless [--port 7430] [--tls-cert PEM --tls-key PEM]
 *   phaselock list
 */
import type { LogFile } from "./log/log_file.ts";
import { browse } from "./net/discovery.ts";
import { runApp } from "./app/desktop.ts";
import { runHost, runJoin } from "./app/headless.ts";
import { runServe } from "./app/serve.ts";
import { EXIT, openLog, settleDataDirs, UsageError } from "./app/options.ts";
import { versionLine } from "./app/version.ts";

const HELP: Record<string, string> = {
  main: `PhaseLock — many devices, one sound.

Usage:
  phaselock [--no-window] [options]   the app (see phaselock --help app)
  phaselock host --headless --name SESSION --as NAME [--port 7420] [FILE.mp3 …]
  phaselock join --headless (HOST:PORT | --discover [SESSION]) --as NAME
  phaselock serve --headless [--port 7430]   a swarm server for browser-only groups
  phaselock list
  phaselock COMMAND --help
  phaselock --version

Headless mode reads one command per line on stdin (words or JSON) and prints one JSON event
per line on stdout; human-readable logs go to stderr.`,
  host: `phaselock host --headless --name SESSION --as NAME [options] [FILE.mp3 …]

Creates a jam, advertises it on the LAN and queues the files given. Phones and laptops join
from a browser at the address printed on stderr (also joinUrl in the session event).
  --name SESSION            session name shown to peers (required)
  --as NAME                 your display name (required)
  --port N                  TCP port for control and files, UDP port for clock (default 7420)
  --bind ADDRESS            address to listen on (default 0.0.0.0)
  --max-peers N             how many peers may join, 1–20 (default 5)
  --audio BACKEND           auto | pulse | portaudio | null | wav (default auto)
  --wav-out FILE            output file for --audio wav
  --no-advertise            do not announce the jam by mDNS
  --mic SOURCE              microphone for calibrate (a PulseAudio source; default input)
  --cache-dir DIR           where accepted song requests are kept
  --speaker-delay-ms MS     this device's speaker latency, 0–500 (remembered per device)
  --channel MODE            stereo | left | right | mono (remembered per device)
  --config-dir DIR          where speaker settings are remembered
  --data-dir DIR            portable: keep settings, cache, log and window data in DIR
  --log-file FILE           where this machine's log goes (default: the OS log folder)
  --log-max-bytes N         log size cap; oldest entries are dropped past it (default 20 MB)
  --sim-clock-offset-ms MS  testing aid: make this process's clock wrong by MS
  --sim-clock-skew-ppm PPM  testing aid: make this process's clock run PPM fast
  --sim-output-latency-ms MS  testing aid: this device sounds MS late without knowing it

Commands on stdin: add PATH, play, pause, resume, stop, seek SECONDS, skip, queue,
move FROM TO, remove N (positions as listed by queue, from 1), inbox, accept ID, reject ID,
retry PEER, skip-peer PEER, volume 0..1, mute, unmute, delay MS, channel MODE,
channel PEER MODE, clicks on|off (the click test: every device ticks each second, for 60 s),
probe [PEER] (calibration: that device, or this one, plays a 250 ms chirp a second from now),
calibrate [PEER|all] (the microphone hears every device; speaker delays are set so all are
heard together there), status, quit — or JSON, e.g. {"cmd":"seek","seconds":42}.`,
  join: `phaselock join --headless (HOST:PORT | --discover [SESSION]) --as NAME [options]

Joins a jam directly or by LAN discovery (the first jam, or the first named SESSION).
  --as NAME                 your display name (required)
  --audio BACKEND           auto | pulse | portaudio | null | wav (default auto)
  --wav-out FILE            output file for --audio wav
  --cache-dir DIR           where received tracks are kept
  --speaker-delay-ms MS     this device's speaker latency, 0–500 (remembered per device)
  --channel MODE            stereo | left | right | mono (remembered per device)
  --config-dir DIR          where speaker settings are remembered
  --data-dir DIR            portable: keep settings, cache, log and window data in DIR
  --log-file FILE           where this machine's log goes (default: the OS log folder)
  --log-max-bytes N         log size cap; oldest entries are dropped past it (default 20 MB)
  --sim-clock-offset-ms MS  testing aid: make this process's clock wrong by MS
  --sim-clock-skew-ppm PPM  testing aid: make this process's clock run PPM fast
  --sim-output-latency-ms MS  testing aid: this device sounds MS late without knowing it

Commands on stdin: queue, request PATH (offer a song to the host), volume 0..1, mute, unmute,
delay MS, channel MODE, clicks on|off (asks the host for the click test), status, quit. Exits
with code 3 when the host goes away ("Host disconnected — session ended"), 4 when it refuses
the join.`,
  app: `phaselock [--no-window] [options]

Opens the PhaseLock window on its Home screen: create a jam or join one.
  --no-window               no window: print the UI's address (one JSON line on stdout) and
                            serve it to browsers on this machine only
  --port N                  port offered for new jams (default 7420)
  --bind ADDRESS            address jams listen on (default 0.0.0.0)
  --max-peers N             how many peers may join a jam you create, 1–20 (default 5)
  --audio BACKEND           auto | pulse | portaudio | null | wav (default auto)
  --wav-out FILE            output file for --audio wav
  --cache-dir DIR           where received tracks, accepted requests and added files are kept
  --config-dir DIR          where settings and the names you used are remembered
  --data-dir DIR            portable: keep settings, cache, log and window data in DIR
                            (a folder "PhaseLock Data" beside the program does the same)
  --log-file FILE           where this machine's log goes (default: the OS log folder)
  --log-max-bytes N         log size cap; oldest entries are dropped past it (default 20 MB)
  --print-url               with a window: also print the UI's address (as --no-window does)
  --no-discover             do not look for jams on the LAN
  --no-advertise            do not announce created jams on the LAN
  --mic SOURCE              microphone for Calibrate (a PulseAudio source; default input)
  --sim-clock-offset-ms MS  testing aid: make this process's clock wrong by MS
  --sim-clock-skew-ppm PPM  testing aid: make this process's clock run PPM fast
  --sim-output-latency-ms MS  testing aid: this device sounds MS late without knowing it

Closing the window ends the session (peers are told).`,
  serve: `phaselock serve --headless [options]

Runs a swarm server: browsers open its address, join a swarm with a shared key and play files
they share with each other, peer to peer. The server introduces members, relays their WebRTC
signalling and answers clock pings; it never sees the key (only its hash) nor any file.
  --port N                  TCP port to listen on (default 7430; 0 picks a free one)
  --bind ADDRESS            address to listen on (default 0.0.0.0)
  --tls-cert FILE           serve HTTPS with this certificate chain (PEM); needs --tls-key
  --tls-key FILE            the certificate's private key (PEM)
  --ice-server URL          a STUN or TURN server handed to the browsers, repeatable:
                            stun:HOST:PORT, turn:HOST:PORT, turns:HOST:PORT,
                            turn:USER:PASSWORD@HOST:PORT (credentials for TURN)
  --config-dir DIR          the settings folder, as for the other commands (serve writes none)
  --data-dir DIR            portable: keep the log in DIR
  --log-file FILE           where this machine's log goes (default: the OS log folder)
  --log-max-bytes N         log size cap; oldest entries are dropped past it (default 20 MB)

Prints {"type":"serving","url":…,"port":N,"tls":…} on stdout once listening. Without TLS it
serves plain HTTP: fine on a LAN or behind a TLS-terminating proxy, but phones need HTTPS for
some features. Commands on stdin: status (the metrics as one JSON line), quit; SIGINT and
SIGTERM stop it too.`,
  list: `phaselock list [--timeout-ms 2000]

Prints the jams discovered on the LAN as a JSON array.`,
};

/** A "list" flag may be given several times; its value is every one, in order. */
type Spec = Record<string, "string" | "number" | "boolean" | "optional-string" | "list">;

const COMMON: Spec = {
  help: "boolean",
  headless: "boolean",
  as: "string",
  audio: "string",
  "wav-out": "string",
  "sim-clock-offset-ms": "number",
  "sim-clock-skew-ppm": "number",
  "sim-output-latency-ms": "number",
  "speaker-delay-ms": "number",
  channel: "string",
  "config-dir": "string",
  "log-file": "string",
  "log-max-bytes": "number",
  "data-dir": "string",
};
const SPECS: Record<string, Spec> = {
  host: {
    ...COMMON,
    name: "string",
    port: "number",
    bind: "string",
    "max-peers": "number",
    "no-advertise": "boolean",
    "cache-dir": "string",
    mic: "string",
  },
  join: { ...COMMON, discover: "optional-string", "cache-dir": "string" },
  serve: {
    help: "boolean",
    headless: "boolean",
    port: "number",
    bind: "string",
    "tls-cert": "string",
    "tls-key": "string",
    "ice-server": "list",
    "config-dir": "string",
    "data-dir": "string",
    "log-file": "string",
    "log-max-bytes": "number",
  },
  list: { help: "boolean", "timeout-ms": "number" },
  app: {
    ...COMMON,
    "no-window": "boolean",
    "print-url": "boolean",
    "no-advertise": "boolean",
    "no-discover": "boolean",
    port: "number",
    bind: "string",
    "max-peers": "number",
    "cache-dir": "string",
    mic: "string",
  },
};

/** Parses `--flag value` arguments against a spec; throws UsageError with one line. */
export function parseFlags(args: string[], spec: Spec) {
  const flags: Record<string, string | number | boolean | string[]> = {};
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
    } else if (kind === "list") {
      flags[key] = [...((flags[key] as string[] | undefined) ?? []), value];
    } else flags[key] = value;
  }
  return { flags, positional };
}

export async function main(args: string[]): Promise<number> {
  // No command (or only options): the app.
  const [cmd, ...rest] = !args.length ||
      args[0].startsWith("--") && args[0] !== "--help" && args[0] !== "--version"
    ? ["app", ...args]
    : args;
  let logFile: LogFile | null = null;
  try {
    if (cmd === "--version" || cmd === "-V" || cmd === "version") {
      console.log(versionLine());
      return EXIT.ok;
    }
    if (cmd === "--help" || cmd === "-h" || cmd === "help") {
      console.log(rest[0] && HELP[rest[0]] ? HELP[rest[0]] : HELP.main);
      return EXIT.ok;
    }
    const spec = SPECS[cmd];
    if (!spec) {
      throw new UsageError(
        `Unknown command "${cmd}". Use host, join, serve or list (see --help).`,
      );
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
    settleDataDirs(flags);
    if (cmd === "app") {
      if (positional.length) throw new UsageError(`Unexpected argument "${positional[0]}".`);
      logFile = openLog(flags, "app");
      return await runApp(flags, logFile);
    }
    if (cmd === "serve") {
      if (positional.length) throw new UsageError(`Unexpected argument "${positional[0]}".`);
      if (!flags.headless) {
        throw new UsageError("serve runs from scripts: add --headless (it has no window).");
      }
      logFile = openLog(flags, "serve");
      return await runServe(flags, logFile);
    }
    if (!flags.headless) {
      throw new UsageError(
        `${cmd} runs from scripts with --headless; for the window, run phaselock without a command.`,
      );
    }
    logFile = openLog(flags, cmd);
    return cmd === "host"
      ? await runHost(flags, positional, logFile)
      : await runJoin(flags, positional, logFile);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`phaselock: ${e.message}`);
      return EXIT.usage;
    }
    const event = { type: "error", message: (e as Error).message };
    console.log(JSON.stringify(event));
    logFile?.write(event);
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
