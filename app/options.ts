/**
 * Turning command-line flags into the engine's options: audio backend, simulated clock,
 * speaker settings, the settings/cache/log folders. Shared by headless mode and the app.
 */
import { SINK_BACKENDS, type SinkBackend } from "../audio/sink.ts";
import { LogFile } from "../log/log_file.ts";
import { type CacheKind, confineToolkit, type DataDirs, dataDirs } from "./data_dirs.ts";
import { makeLocalClock } from "../net/local_clock.ts";
import {
  CHANNEL_MODES,
  delayProblem,
  type DeviceSettings,
  isChannelMode,
  SettingsStore,
} from "../session/device_settings.ts";
import { MAX_PEERS, MAX_PEERS_LIMIT } from "../session/protocol.ts";

export const EXIT = { ok: 0, failure: 1, usage: 2, hostGone: 3, refused: 4 } as const;

/** A bad command line: main prints the message as one line and exits with code 2. */
export class UsageError extends Error {}

/** `--port`: a whole number from 1 to 65535 (default 7420). */
export function portOf(flags: Record<string, unknown>): number {
  const port = (flags.port as number | undefined) ?? 7420;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--port must be a whole number from 1 to 65535, not ${port}.`);
  }
  return port;
}

/** `--max-peers`: how many peers a jam admits, a whole number from 1 to 20 (default 5). */
export function maxPeersOf(flags: Record<string, unknown>): number {
  const n = (flags["max-peers"] as number | undefined) ?? MAX_PEERS;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PEERS_LIMIT) {
    throw new UsageError(
      `--max-peers must be a whole number from 1 to ${MAX_PEERS_LIMIT}, not ${n}.`,
    );
  }
  return n;
}

export function need(flags: Record<string, unknown>, key: string): string {
  const v = flags[key];
  if (typeof v !== "string" || v.trim() === "") throw new UsageError(`--${key} is required.`);
  return v;
}

export function backendOf(flags: Record<string, unknown>): SinkBackend | "auto" {
  const b = (flags.audio as string | undefined) ?? "auto";
  if (b !== "auto" && !SINK_BACKENDS.includes(b as SinkBackend)) {
    throw new UsageError(`--audio must be one of auto, ${SINK_BACKENDS.join(", ")}; got "${b}".`);
  }
  if (b === "wav" && !flags["wav-out"]) throw new UsageError("--audio wav needs --wav-out FILE.");
  return b as SinkBackend | "auto";
}

export function clockOf(flags: Record<string, unknown>) {
  return makeLocalClock({
    offsetMs: (flags["sim-clock-offset-ms"] as number | undefined) ?? 0,
    skewPpm: (flags["sim-clock-skew-ppm"] as number | undefined) ?? 0,
  });
}

/**
 * `--sim-output-latency-ms`: a testing aid that makes this device sound late by MS without
 * knowing it, like a Bluetooth speaker or an amplifier's DSP (0–2000).
 */
export function simOutputLatencyOf(flags: Record<string, unknown>): number | undefined {
  const ms = flags["sim-output-latency-ms"];
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !(ms >= 0 && ms <= 2000)) {
    throw new UsageError(`--sim-output-latency-ms must be from 0 to 2000, not ${ms}.`);
  }
  return ms;
}

/** Speaker settings given on the command line (they override the remembered ones). */
export function deviceOf(flags: Record<string, unknown>): Partial<DeviceSettings> {
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

/** One resolution per command line: the portable folder is looked for on disk once. */
const resolved = new WeakMap<Record<string, unknown>, DataDirs>();
function dirsOf(flags: Record<string, unknown>): DataDirs {
  let d = resolved.get(flags);
  if (!d) resolved.set(flags, d = dataDirs(flags));
  return d;
}

/**
 * A portable run (`--data-dir`, or a `PhaseLock Data` folder beside the program): makes the
 * folder and points the toolkit's own files into it, before any window or sound exists.
 */
export function settleDataDirs(flags: Record<string, unknown>): DataDirs {
  const dirs = dirsOf(flags);
  if (!dirs.portable || !dirs.webview) return dirs;
  try {
    Deno.mkdirSync(dirs.portable, { recursive: true });
    confineToolkit(dirs.webview);
  } catch (e) {
    throw new UsageError(
      `Cannot keep PhaseLock's data in ${dirs.portable}: ${(e as Error).message}`,
    );
  }
  return dirs;
}

/** `--config-dir`, the portable folder's settings, or the OS's folder for settings. */
export function configDir(flags: Record<string, unknown>): string {
  return dirsOf(flags).config;
}

export function settingsStore(flags: Record<string, unknown>): SettingsStore {
  return new SettingsStore(`${configDir(flags)}/settings.json`);
}

/** The audio output options host and peer share. */
export function outputOf(flags: Record<string, unknown>) {
  return {
    audio: backendOf(flags),
    wavPath: flags["wav-out"] as string | undefined,
    simOutputLatencyMs: simOutputLatencyOf(flags),
    device: deviceOf(flags),
    settings: settingsStore(flags),
  };
}

/**
 * `--cache-dir`, the portable folder's cache, or the OS cache folder: `tracks` (received),
 * `requests` (accepted), `uploads` (files chosen in the app's window).
 */
export function cacheDir(flags: Record<string, unknown>, sub: CacheKind): string {
  return dirsOf(flags).cache(sub);
}

/** This machine's log file; every event and command goes to it as well as to stdout. */
export function openLog(flags: Record<string, unknown>, role: string): LogFile {
  const max = flags["log-max-bytes"] as number | undefined;
  if (max !== undefined && (!Number.isInteger(max) || max < 1024)) {
    throw new UsageError(`--log-max-bytes must be a whole number ≥ 1024, not ${max}.`);
  }
  return new LogFile(dirsOf(flags).log, {
    maxBytes: max,
    context: { role, pid: Deno.pid },
  });
}
