/**
 * The engine's one control surface: typed commands in, typed events out. Headless mode reads
 * commands as words or JSON lines on stdin and prints events as JSON lines; the UI will send
 * the same commands over its WebSocket. Parsing is pure and never throws: a bad line becomes
 * a {@link CommandError} with a sentence.
 */
import type { DiscoveredJam } from "../net/discovery.ts";

export type Command =
  | { cmd: "add"; path: string }
  | { cmd: "play" }
  | { cmd: "pause" }
  | { cmd: "resume" }
  | { cmd: "stop" }
  | { cmd: "seek"; seconds: number }
  | { cmd: "skip" }
  | { cmd: "queue" }
  /** Positions are 1-based, as listed by `queue`. */
  | { cmd: "move"; from: number; to: number }
  | { cmd: "remove"; position: number }
  /** Peer: offer a file from this machine to the host. */
  | { cmd: "request"; path: string }
  | { cmd: "inbox" }
  | { cmd: "accept"; id: number }
  | { cmd: "reject"; id: number }
  /** Host: try a peer's failed downloads again, or play without waiting for that peer. */
  | { cmd: "retry"; peer: string }
  | { cmd: "skip-peer"; peer: string }
  | { cmd: "volume"; level: number }
  | { cmd: "mute" }
  | { cmd: "unmute" }
  | { cmd: "status" }
  | { cmd: "delay"; ms: number }
  /** Without `peer`: this device. With `peer` (host only): assign that peer's channel. */
  | { cmd: "channel"; channel: ChannelMode; peer?: string }
  /**
   * The click test, for the whole jam: every device ticks at each whole host second (off by
   * itself after a minute). A peer asks the host, which tells everyone.
   */
  | { cmd: "clicks"; on: boolean }
  /**
   * Host: one device (this one without `peer`) plays the calibration probe about a second
   * from now; the `probe` event says when, in host time.
   */
  | { cmd: "probe"; peer?: string }
  /**
   * Host: measure every device (or the one named) through the host's microphone and set speaker
   * delays so that all of them are heard together there. See `session/calibration.ts`.
   */
  | { cmd: "calibrate"; peer?: string }
  | { cmd: "quit" }
  /** Host: queue the built-in demo track. */
  | { cmd: "add-demo" }
  // ---- the app (window or browser UI): start and end sessions ----
  /** Create a jam: this machine becomes its host. */
  | { cmd: "create"; session: string; name: string; port: number }
  /** Join the jam at `address` (`HOST:PORT`). */
  | { cmd: "join"; address: string; name: string }
  /** End this machine's part in the session (the host ends the jam) and go back Home. */
  | { cmd: "leave" };

export type CommandName = Command["cmd"];
export type ChannelMode = "stereo" | "left" | "right" | "mono";
const CHANNELS: readonly string[] = ["stereo", "left", "right", "mono"];
/** Commands a peer may run: they only touch this device. */
export const LOCAL_COMMANDS: ReadonlySet<CommandName> = new Set([
  "queue",
  "request",
  "volume",
  "mute",
  "unmute",
  "status",
  "delay",
  "channel",
  "clicks",
  "quit",
]);

export interface CommandError {
  error: string;
}

const NO_ARGS = new Set([
  "play",
  "pause",
  "resume",
  "stop",
  "skip",
  "queue",
  "inbox",
  "mute",
  "unmute",
  "status",
  "quit",
  "add-demo",
  "leave",
]);
const USAGE = "add PATH, play, pause, resume, stop, seek SECONDS, skip, queue, move FROM TO, " +
  "remove N, request PATH, inbox, accept ID, reject ID, retry PEER, skip-peer PEER, " +
  "volume 0..1, mute, unmute, delay MS, channel stereo|left|right|mono [for PEER], " +
  "clicks on|off, probe [PEER], calibrate [PEER|all], add-demo, status, quit";
const MAX_LINE = 8192;

/** A whole number ≥ 1 from a word or a JSON number, else null. */
function wholeNumber(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}

/** `HOST:PORT` (IPv6 in brackets) split into its parts, or null when it is not one. */
export function parseAddress(text: string): { hostname: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:\s\[\]]+):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { hostname: m[1].replace(/^\[|\]$/g, ""), port };
}

export function parseCommand(line: string): Command | CommandError {
  const text = line.trim();
  if (text.length > MAX_LINE) return { error: `Command is longer than ${MAX_LINE} characters.` };
  let name: string, arg: unknown, json = false;
  if (text.startsWith("{")) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(text);
    } catch {
      return { error: "Command is not valid JSON." };
    }
    if (typeof o !== "object" || o === null || typeof o.cmd !== "string") {
      return { error: 'A JSON command needs a "cmd" field, e.g. {"cmd":"play"}.' };
    }
    json = true;
    name = o.cmd;
    arg = o.path ?? o.seconds ?? o.level ?? o.ms ?? o.position ?? o.id ?? o.peer;
    if (o.cmd === "channel") arg = { channel: o.channel, peer: o.peer };
    if (o.cmd === "move") arg = [o.from, o.to];
    if (o.cmd === "clicks") arg = o.on;
  } else {
    const space = text.indexOf(" ");
    name = (space < 0 ? text : text.slice(0, space)).toLowerCase();
    arg = space < 0 ? undefined : text.slice(space + 1).trim();
  }
  if (NO_ARGS.has(name)) return { cmd: name } as Command;
  switch (name) {
    case "add":
    case "request": {
      if (typeof arg !== "string" || arg === "") {
        return { error: `${name} needs a file path: ${name} PATH` };
      }
      // Words mode: allow a quoted path with spaces.
      const path = !json && /^".*"$/.test(arg) ? arg.slice(1, -1) : arg;
      return { cmd: name, path };
    }
    case "remove": {
      const n = wholeNumber(arg);
      return n === null
        ? { error: "remove needs a queue position (1 is the first track): remove 2" }
        : { cmd: "remove", position: n };
    }
    case "move": {
      const [a, b] = Array.isArray(arg) ? arg : typeof arg === "string" ? arg.split(/\s+/) : [];
      const from = wholeNumber(a), to = wholeNumber(b);
      if (
        from === null || to === null || (typeof arg === "string" && arg.split(/\s+/).length > 2)
      ) {
        return { error: "move needs two queue positions (1 is the first track): move 3 1" };
      }
      return { cmd: "move", from, to };
    }
    case "accept":
    case "reject": {
      const n = wholeNumber(arg);
      return n === null
        ? { error: `${name} needs an inbox number, as listed by inbox: ${name} 1` }
        : { cmd: name, id: n };
    }
    case "retry":
    case "skip-peer": {
      if (typeof arg !== "string" || arg.trim() === "") {
        return { error: `${name} needs a peer's name: ${name} Sam` };
      }
      return { cmd: name, peer: arg.trim() };
    }
    case "seek": {
      const s = typeof arg === "number" ? arg : Number(arg);
      if (arg === undefined || arg === "" || !Number.isFinite(s) || s < 0) {
        return { error: "seek needs a position in seconds ≥ 0: seek 42" };
      }
      return { cmd: "seek", seconds: s };
    }
    case "volume": {
      const v = typeof arg === "number" ? arg : Number(arg);
      if (arg === undefined || arg === "" || !Number.isFinite(v) || v < 0 || v > 1) {
        return { error: "volume needs a level from 0 to 1: volume 0.5" };
      }
      return { cmd: "volume", level: v };
    }
    case "delay": {
      const v = typeof arg === "number" ? arg : Number(arg);
      if (arg === undefined || arg === "" || !Number.isFinite(v) || v < 0 || v > 500) {
        return { error: "delay needs a speaker delay from 0 to 500 ms: delay 120" };
      }
      return { cmd: "delay", ms: v };
    }
    case "probe": {
      if (arg === undefined || arg === "") return { cmd: "probe" };
      if (typeof arg !== "string") return { error: "probe takes a peer's name: probe Sam" };
      return { cmd: "probe", peer: arg };
    }
    case "calibrate": {
      if (arg === undefined || arg === "" || arg === "all") return { cmd: "calibrate" };
      if (typeof arg !== "string") {
        return { error: "calibrate takes a peer's name, or all: calibrate Sam" };
      }
      return { cmd: "calibrate", peer: arg };
    }
    case "clicks": {
      // Words say on/off; JSON says true/false.
      const word = typeof arg === "string" ? arg.toLowerCase() : "";
      const on = json ? arg : word === "on" ? true : word === "off" ? false : undefined;
      if (typeof on === "boolean") return { cmd: "clicks", on };
      return { error: 'clicks needs on or off: clicks on (JSON: {"cmd":"clicks","on":true})' };
    }
    case "channel": {
      // Words: "channel left" for this device, "channel Sam (2) left" for a peer (host only).
      let channel: unknown, peer: unknown;
      if (json) ({ channel, peer } = arg as { channel: unknown; peer: unknown });
      else if (typeof arg === "string") {
        const words = arg.split(/\s+/);
        channel = words.pop()?.toLowerCase();
        peer = words.length ? words.join(" ") : undefined;
      }
      if (typeof channel !== "string" || !CHANNELS.includes(channel)) {
        return { error: "channel needs stereo, left, right or mono: channel left" };
      }
      if (peer !== undefined && (typeof peer !== "string" || peer.trim() === "")) {
        return { error: "channel for a peer needs its name: channel Sam left" };
      }
      return peer === undefined
        ? { cmd: "channel", channel: channel as ChannelMode }
        : { cmd: "channel", channel: channel as ChannelMode, peer: (peer as string).trim() };
    }
    case "create": {
      const o = (json ? JSON.parse(text) : {}) as Record<string, unknown>;
      const session = typeof o.session === "string" ? o.session.trim() : "";
      const who = typeof o.name === "string" ? o.name.trim() : "";
      const port = o.port === undefined ? 7420 : wholeNumber(o.port);
      if (!json || !session || !who) {
        return {
          error: 'create needs a session name and your name: {"cmd":"create","session":' +
            '"Friday Night","name":"Alex","port":7420}',
        };
      }
      if (port === null || port > 65535) {
        return { error: "The port must be a whole number from 1 to 65535." };
      }
      // The session name is an mDNS label (63 bytes); names are shown everywhere.
      if (new TextEncoder().encode(session).length > 63) {
        return { error: "The session name is too long: keep it under 40 characters." };
      }
      if (who.length > 40) return { error: "Your name is too long: keep it to 40 characters." };
      return { cmd: "create", session, name: who, port };
    }
    case "join": {
      const o = (json ? JSON.parse(text) : {}) as Record<string, unknown>;
      const address = typeof o.address === "string" ? o.address.trim() : "";
      const who = typeof o.name === "string" ? o.name.trim() : "";
      if (!json || !who) {
        return {
          error: 'join needs the host\'s address and your name: {"cmd":"join","address":' +
            '"192.168.1.20:7420","name":"Sam"}',
        };
      }
      if (who.length > 40) return { error: "Your name is too long: keep it to 40 characters." };
      if (!parseAddress(address)) {
        return {
          error: `Give the host address as IP:port, e.g. 192.168.1.20:7420${
            address ? ` (got "${address.slice(0, 60)}")` : ""
          }.`,
        };
      }
      return { cmd: "join", address, name: who };
    }
    case "":
      return { error: `Empty command. Commands: ${USAGE}.` };
    default:
      return { error: `Unknown command "${name.slice(0, 40)}". Commands: ${USAGE}.` };
  }
}

/** Every event the engine emits; `type` is the discriminator, times are host ms. */
export type EngineEvent =
  | {
    type: "session";
    role: "host" | "peer";
    session: string;
    name: string;
    port?: number;
    host?: string;
    /** Where the jam's files and covers are (`http://HOST:PORT`). */
    jamUrl?: string;
    /** Host: the page phones and laptops open to join, `http://HOST:PORT/` (LAN address). */
    joinUrl?: string;
    /**
     * Host, in the app: `joinUrl` as a QR code, one string of `0`/`1` per row (1 = dark), no
     * quiet zone. Headless output leaves it out: the URL makes the same code.
     */
    joinQr?: string[];
    /** Host: how many peers the jam admits. */
    maxPeers?: number;
  }
  | { type: "audio"; backend: string; audible: boolean; warning?: string }
  | { type: "peer-joined"; id: number; name: string }
  | { type: "peer-left"; id: number; name: string; reason: string }
  | { type: "peer-refused"; name: string; reason: string }
  | { type: "peers"; peers: unknown[] }
  | {
    type: "clock";
    locked: boolean;
    offsetMs: number;
    driftPpm: number;
    rttMs: number;
    errorMs: number;
    color: string;
  }
  /** `current` indexes `tracks` (0-based; −1 when empty); positions in commands are 1-based. */
  | { type: "queue"; tracks: unknown[]; current: number }
  /** Host: the inbox of song requests. */
  | { type: "inbox"; requests: InboxEntry[] }
  /** Host: one request arrived or changed; peer: what became of one of its requests. */
  | {
    type: "request";
    id: number;
    fileName: string;
    title: string;
    state: string;
    peer?: string;
    artist?: string;
    sizeBytes?: number;
    reason?: string;
    /** Peer, while uploading: the fraction sent. */
    progress?: number;
  }
  /** Host: a peer could not get a track after every retry. */
  | { type: "transfer-failed"; peer: string; trackId: string; fileName: string; error: string }
  | {
    type: "transfer";
    trackId: string;
    fileName: string;
    peer?: string;
    state: string;
    progress: number;
    error?: string;
  }
  | { type: "track-ready"; trackId: string; fileName: string; peer?: string; requestedBy?: string }
  /** Peer: the queue goes on with `trackId` at `atHostMs` (none: it ends there). */
  | { type: "next"; trackId: string | null; title: string | null; atHostMs: number }
  | { type: "track-ready-all"; trackId: string; fileName: string }
  | {
    type: "playing";
    trackId: string;
    title: string;
    artist?: string;
    album?: string;
    durationSec?: number;
    positionSec: number;
    atHostMs: number;
  }
  | { type: "paused"; trackId: string; positionSec: number; atHostMs: number }
  | { type: "stopped"; atHostMs: number }
  | { type: "started"; trackId: string; atHostMs: number }
  | { type: "ended"; trackId: string; atHostMs: number }
  | { type: "volume"; level: number; muted: boolean }
  | { type: "device"; device: string; speakerDelayMs: number; channel: ChannelMode }
  /** The click test is on or off, jam-wide (every device ticks at each whole host second). */
  | { type: "clicks"; on: boolean }
  /** Calibration: `device` (the host's or a peer's name) plays the probe from `atHostMs`. */
  | { type: "probe"; device: string; atHostMs: number }
  /**
   * Calibration by the host's microphone: `running` when it starts (the devices in the order
   * they will play, and about how long it takes), then `done` with what was measured and set,
   * or `refused` with a sentence (nothing was changed).
   */
  | CalibrationEvent
  | { type: "status"; [key: string]: unknown }
  | { type: "notice"; level: "info" | "warn" | "error"; message: string }
  | { type: "error"; message: string }
  | { type: "host-disconnected"; message: string }
  | { type: "quit" }
  /**
   * Host, every second: each device's estimated sync error — the clock estimate's noise and
   * the player's own placement error (ms). An estimate, not a measurement.
   */
  | { type: "health"; atHostMs: number; devices: DeviceHealth[] }
  // ---- the app ----
  /** The app is on its Home screen; `message` says why it came back (host gone, refused…). */
  | {
    type: "home";
    hostName: string;
    peerName: string;
    sessionName: string;
    /** The host address last joined (`IP:port`), for the Join form. */
    address: string;
    port: number;
    message?: string;
  }
  /** Jams discovered on the LAN (mDNS), updated while Home is shown. */
  | { type: "jams"; jams: JamListing[] }
  /** `--no-window`: where the app's UI is (loopback, with the per-run token). */
  | { type: "ui"; url: string };

export interface DeviceHealth {
  name: string;
  /** True for the host's own device. */
  host: boolean;
  clockErrorMs: number;
  placementMs: number;
}

/** A jam found on the LAN, as Home lists it (one of another version is shown, not joinable). */
export type JamListing = DiscoveredJam;

export interface InboxEntry {
  id: number;
  peer: string;
  fileName: string;
  title: string;
  artist: string;
  sizeBytes: number;
  state: "waiting" | "uploading";
}

/** One device's part in a calibration. */
export interface CalibratedDevice {
  name: string;
  /** The host's own device (the reference). */
  host: boolean;
  /** Heard clearly enough at the microphone to be placed. */
  heard: boolean;
  /**
   * How much later this device is heard than the quickest device measured, with no speaker
   * delay (ms): its output latency as the microphone hears it, relative to the others.
   */
  latencyMs: number | null;
  /** 0..1: how clearly the probe stood out of the recording (the normalised correlation). */
  confidence: number;
  delayBeforeMs: number;
  /** The speaker delay set (equal to `delayBeforeMs` when nothing changed). */
  delayMs: number;
}

export type CalibrationEvent =
  | { type: "calibration"; state: "running"; devices: string[]; expectedMs: number }
  | { type: "calibration"; state: "done"; devices: CalibratedDevice[]; tookMs: number }
  | {
    type: "calibration";
    state: "refused";
    message: string;
    /** What was measured before refusing, when anything was. */
    devices?: CalibratedDevice[];
  };
