/**
 * The control protocol between a host and its peers, carried as JSON text frames over the
 * WebSocket at `/ws` on the host's port. One discriminated union keyed by `type`; every
 * incoming frame goes through {@link decodeMessage}, which enforces the size cap and the shape
 * of each field. Field tables live in `docs/protocol.md`.
 */

export const PROTOCOL_VERSION = 2;
/**
 * Largest control frame accepted, in bytes: a full queue (100 tracks, every text field at its
 * 255-character limit, even in 3-byte UTF-8) fits.
 */
export const MAX_MESSAGE_BYTES = 512 * 1024;
/** Peers a jam admits unless the host says otherwise (`--max-peers`). */
export const MAX_PEERS = 5;
/** The most peers a host may allow (`--max-peers` up to this). */
export const MAX_PEERS_LIMIT = 20;
export const MAX_NAME_LENGTH = 40;

export type ClockColor = "green" | "yellow" | "red";
/** `cached`: downloaded and verified, not decoded (only the current and next track are). */
export type TrackStateName = "downloading" | "cached" | "decoding" | "ready" | "failed";
/** Largest number of song requests one peer may have waiting in the host's inbox. */
export const MAX_PENDING_REQUESTS = 3;

export interface TrackInfo {
  /** SHA-256 of the file, lowercase hex: the track's identity and its download address. */
  id: string;
  fileName: string;
  title: string;
  sizeBytes: number;
  durationSec: number;
  /** The file's sample rate: frame numbers in `play` count at this rate. */
  rateHz?: number;
  artist: string;
  album: string;
  /** Present when the file has a cover picture: `GET /covers/{id}`. */
  cover?: { mime: string; sizeBytes: number };
}

export interface PeerInfo {
  id: number;
  name: string;
  clock: ClockColor;
  offsetMs: number;
  rttMs: number;
  audio: { backend: string; device: boolean };
  /** State of the current track on this peer, if any. */
  track: TrackStateName | "none";
  channel: ChannelName;
  speakerDelayMs: number;
  /** Download progress 0..1 of the current track on this peer (1 once downloaded). */
  progress?: number;
  /** State of the next track on this peer, if any. */
  next?: TrackStateName | "none";
  /** Download progress 0..1 of the next track on this peer. */
  nextProgress?: number;
  /** The peer's estimated clock offset uncertainty (ms); absent until its first clock report. */
  errorMs?: number;
  /** What kind of device it is: the PhaseLock app, or a web page. */
  client?: "native" | "browser";
}

export type ChannelName = "stereo" | "left" | "right" | "mono";

// ---- peer → host ----
export interface HelloMsg {
  type: "hello";
  protocolVersion: number;
  name: string;
  client: "native" | "browser";
  audio: { backend: string; device: boolean };
}
export interface ClockReportMsg {
  type: "clock";
  locked: boolean;
  offsetMs: number;
  driftPpm: number;
  rttMs: number;
  /** Estimated uncertainty of the offset (ms). */
  errorMs: number;
  /** The player's own placement error while playing (ms, + = ahead); for the sync panel. */
  placementMs?: number;
  /**
   * How far ahead of being heard this device commits its output (ms). A browser renders a few
   * hundred ms ahead; the host schedules that much further out so a `play` is never late.
   */
  bufferMs?: number;
}
/**
 * A clock exchange over the control socket, for devices that cannot use the UDP clock port
 * (browsers): the peer sends its local time `t1`; the host answers with it and its own receive
 * and send times.
 */
export interface PingMsg {
  type: "ping";
  t1: number;
}
export interface TrackStateMsg {
  type: "trackState";
  trackId: string;
  state: TrackStateName;
  progress: number;
  error?: string;
}
/** The peer's output settings, sent after welcome and on every change. */
export interface SettingsMsg {
  type: "settings";
  channel: ChannelName;
  speakerDelayMs: number;
}
export interface ByeMsg {
  type: "bye";
}
/** A song request: the peer offers a file from its machine; the host accepts or rejects it. */
export interface RequestMsg {
  type: "request";
  /** The peer's own number for this request. */
  requestId: number;
  fileName: string;
  title: string;
  artist: string;
  sizeBytes: number;
  sha256: string;
}

/**
 * The click test, the one type sent both ways. From a peer: please turn it on or off for the
 * whole jam. From the host: it is now on or off on every device (also sent right after
 * `welcome`, so a late joiner ticks too). While on, each device ticks at every whole host
 * second; the host turns it off by itself after a minute.
 */
export interface ClicksMsg {
  type: "clicks";
  on: boolean;
}

/**
 * Calibration (host → peer): play the probe (a 250 ms chirp, `audio/arrival.ts`) from host time
 * `atHostMs`, over whatever plays, whatever the volume. The host's microphone hears it.
 */
export interface ProbeMsg {
  type: "probe";
  atHostMs: number;
}

// ---- host → peer ----
export interface WelcomeMsg {
  type: "welcome";
  protocolVersion: number;
  peerId: number;
  name: string;
  session: string;
  hostName: string;
}
export interface RefusedMsg {
  type: "refused";
  reason: string;
}
export interface PeersMsg {
  type: "peers";
  peers: PeerInfo[];
}
export interface QueueMsg {
  type: "queue";
  tracks: TrackInfo[];
  current: number;
}
/**
 * The queue goes on with `trackId` at host time `atHostMs` (the exact end of the current
 * track); without `trackId`, a transition sent earlier is cancelled and sound ends there.
 */
export interface NextMsg {
  type: "next";
  trackId?: string;
  atHostMs: number;
}
/** Try the failed downloads again (the host's `retry PEER`). */
export interface RetryMsg {
  type: "retry";
}
/** The host accepted request `requestId`: send the file with `PUT /requests/{token}`. */
export interface UploadMsg {
  type: "upload";
  requestId: number;
  token: string;
}
export type RequestOutcome = "waiting" | "uploading" | "queued" | "rejected" | "refused" | "failed";
/** What became of a song request; `reason` is a sentence for refused/failed/rejected. */
export interface RequestResultMsg {
  type: "requestResult";
  requestId: number;
  outcome: RequestOutcome;
  reason?: string;
}
/** Play `trackId` so that track frame `fromFrame` is heard at host time `atHostMs`. */
export interface PlayMsg {
  type: "play";
  trackId: string;
  fromFrame: number;
  atHostMs: number;
}
/** Go silent at host time `atHostMs`. */
export interface PauseMsg {
  type: "pause";
  atHostMs: number;
}
export interface NoticeMsg {
  type: "notice";
  level: "info" | "warn" | "error";
  text: string;
}
/** The host assigns this peer a channel (e.g. the left of a stereo pair). */
export interface AssignMsg {
  type: "assign";
  channel: ChannelName;
}
/**
 * The host's calibration measured this peer's output through the host's microphone: use this
 * speaker delay from now on (remembered for the device like one set by hand).
 */
export interface DelayMsg {
  type: "delay";
  speakerDelayMs: number;
}
export interface HeartbeatMsg {
  type: "heartbeat";
  hostMs: number;
}
/** The answer to a {@link PingMsg}: the host received it at `t2` and answered at `t3`. */
export interface PongMsg {
  type: "pong";
  t1: number;
  t2: number;
  t3: number;
}

export type PeerToHost =
  | HelloMsg
  | ClockReportMsg
  | TrackStateMsg
  | SettingsMsg
  | ByeMsg
  | RequestMsg
  | PingMsg
  | ClicksMsg;
export type HostToPeer =
  | WelcomeMsg
  | RefusedMsg
  | PeersMsg
  | QueueMsg
  | NextMsg
  | RetryMsg
  | UploadMsg
  | RequestResultMsg
  | PlayMsg
  | PauseMsg
  | NoticeMsg
  | AssignMsg
  | DelayMsg
  | HeartbeatMsg
  | PongMsg
  | ClicksMsg
  | ProbeMsg;
export type Message = PeerToHost | HostToPeer;

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

// ---- validation ----

type Check = (v: unknown, path: string) => void;

function fail(path: string, what: string): never {
  throw new ProtocolError(`${path} ${what}`);
}
const str = (min: number, max: number): Check => (v, p) => {
  if (typeof v !== "string") fail(p, "must be a string");
  if (v.length < min || v.length > max) fail(p, `must be ${min}–${max} characters`);
};
const num = (min: number, max: number): Check => (v, p) => {
  if (typeof v !== "number" || !Number.isFinite(v)) fail(p, "must be a finite number");
  if (v < min || v > max) fail(p, `must be between ${min} and ${max}`);
};
const int = (min: number, max: number): Check => (v, p) => {
  num(min, max)(v, p);
  if (!Number.isInteger(v)) fail(p, "must be an integer");
};
const bool: Check = (v, p) => {
  if (typeof v !== "boolean") fail(p, "must be true or false");
};
const oneOf = (...values: string[]): Check => (v, p) => {
  if (typeof v !== "string" || !values.includes(v)) fail(p, `must be one of ${values.join(", ")}`);
};
const sha256: Check = (v, p) => {
  if (typeof v !== "string" || !/^[0-9a-f]{64}$/.test(v)) fail(p, "must be a SHA-256 hex digest");
};
const optional = (c: Check): Check => (v, p) => {
  if (v !== undefined) c(v, p);
};
const obj = (fields: Record<string, Check>): Check => (v, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(p, "must be an object");
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(k in fields)) fail(`${p}.${k}`, "is not a known field");
  for (const [k, c] of Object.entries(fields)) c(o[k], `${p}.${k}`);
};
const arr = (item: Check, max: number): Check => (v, p) => {
  if (!Array.isArray(v)) fail(p, "must be an array");
  if (v.length > max) fail(p, `must have at most ${max} items`);
  v.forEach((x, i) => item(x, `${p}[${i}]`));
};

const HOUR_MS = 3.6e6;
/** Host times are epoch milliseconds; anything within ±10 years of 2020 is plausible. */
const hostMs = num(1.2e12, 2.0e12);
const trackInfo = obj({
  id: sha256,
  fileName: str(1, 255),
  title: str(0, 255),
  sizeBytes: int(0, 1e9),
  durationSec: num(0, 24 * 3600),
  rateHz: optional(int(8000, 192000)),
  artist: str(0, 255),
  album: str(0, 255),
  cover: optional(obj({ mime: str(1, 40), sizeBytes: int(1, 1e8) })),
});
const trackState = oneOf("downloading", "cached", "decoding", "ready", "failed");
const audio = obj({ backend: str(1, 20), device: bool });
const channel = oneOf("stereo", "left", "right", "mono");
const speakerDelayMs = num(0, 500);

const schemas: Record<string, Check> = {
  hello: obj({
    type: str(1, 20),
    protocolVersion: int(0, 1e6),
    name: str(1, 200),
    client: oneOf("native", "browser"),
    audio,
  }),
  clock: obj({
    type: str(1, 20),
    locked: bool,
    offsetMs: num(-HOUR_MS * 24 * 365, HOUR_MS * 24 * 365),
    driftPpm: num(-1e5, 1e5),
    rttMs: num(0, 60_000),
    errorMs: num(0, 1e9),
    placementMs: optional(num(-1e6, 1e6)),
    bufferMs: optional(num(0, 5000)),
  }),
  ping: obj({ type: str(1, 20), t1: num(-1e13, 1e13) }),
  trackState: obj({
    type: str(1, 20),
    trackId: sha256,
    state: trackState,
    progress: num(0, 1),
    error: optional(str(0, 500)),
  }),
  settings: obj({ type: str(1, 20), channel, speakerDelayMs }),
  bye: obj({ type: str(1, 20) }),
  request: obj({
    type: str(1, 20),
    requestId: int(0, 2 ** 31),
    fileName: str(1, 255),
    title: str(0, 255),
    artist: str(0, 255),
    // Any size is well-formed; the host refuses files over its limit with a sentence.
    sizeBytes: int(0, 1e12),
    sha256,
  }),
  welcome: obj({
    type: str(1, 20),
    protocolVersion: int(0, 1e6),
    peerId: int(0, 2 ** 31),
    name: str(1, 200),
    session: str(1, 200),
    hostName: str(1, 200),
  }),
  refused: obj({ type: str(1, 20), reason: str(1, 500) }),
  peers: obj({
    type: str(1, 20),
    peers: arr(
      obj({
        id: int(0, 2 ** 31),
        name: str(1, 200),
        clock: oneOf("green", "yellow", "red"),
        offsetMs: num(-1e12, 1e12),
        rttMs: num(0, 1e9),
        audio,
        track: oneOf("none", "downloading", "cached", "decoding", "ready", "failed"),
        channel,
        speakerDelayMs,
        progress: optional(num(0, 1)),
        next: optional(oneOf("none", "downloading", "cached", "decoding", "ready", "failed")),
        nextProgress: optional(num(0, 1)),
        errorMs: optional(num(0, 1e9)),
        client: optional(oneOf("native", "browser")),
      }),
      64,
    ),
  }),
  queue: obj({ type: str(1, 20), tracks: arr(trackInfo, 100), current: int(-1, 100) }),
  next: obj({ type: str(1, 20), trackId: optional(sha256), atHostMs: hostMs }),
  retry: obj({ type: str(1, 20) }),
  upload: obj({ type: str(1, 20), requestId: int(0, 2 ** 31), token: str(32, 64) }),
  requestResult: obj({
    type: str(1, 20),
    requestId: int(0, 2 ** 31),
    outcome: oneOf("waiting", "uploading", "queued", "rejected", "refused", "failed"),
    reason: optional(str(1, 1000)),
  }),
  play: obj({
    type: str(1, 20),
    trackId: sha256,
    fromFrame: num(0, 1e10),
    atHostMs: hostMs,
  }),
  pause: obj({ type: str(1, 20), atHostMs: hostMs }),
  notice: obj({ type: str(1, 20), level: oneOf("info", "warn", "error"), text: str(1, 1000) }),
  assign: obj({ type: str(1, 20), channel }),
  delay: obj({ type: str(1, 20), speakerDelayMs }),
  heartbeat: obj({ type: str(1, 20), hostMs }),
  pong: obj({ type: str(1, 20), t1: num(-1e13, 1e13), t2: hostMs, t3: hostMs }),
  clicks: obj({ type: str(1, 20), on: bool }),
  probe: obj({ type: str(1, 20), atHostMs: hostMs }),
};

const PEER_TYPES = new Set(["hello", "clock", "trackState", "settings", "bye", "request", "ping"]);
/** Types either side may send (same fields both ways). */
const SHARED_TYPES = new Set(["clicks"]);

/**
 * Parses and validates one control frame. Throws {@link ProtocolError} with a sentence naming
 * the offending field; never returns a message that does not match its declared type.
 */
export function decodeMessage(frame: string | Uint8Array, from: "peer" | "host"): Message {
  const bytes = typeof frame === "string" ? frame.length : frame.byteLength;
  // String length ≤ byte length ≤ 3 × string length for UTF-16 → UTF-8, so check both bounds.
  if (bytes > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`message of ${bytes} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte cap`);
  }
  const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame);
  if (new TextEncoder().encode(text).byteLength > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`message exceeds the ${MAX_MESSAGE_BYTES}-byte cap`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError("message is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("message must be a JSON object");
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !Object.hasOwn(schemas, type)) {
    throw new ProtocolError(`unknown message type ${JSON.stringify(type)?.slice(0, 40)}`);
  }
  if (!SHARED_TYPES.has(type) && PEER_TYPES.has(type) !== (from === "peer")) {
    throw new ProtocolError(`a ${from} may not send "${type}"`);
  }
  schemas[type](value, type);
  return value as Message;
}

export function encodeMessage(msg: Message): string {
  const text = JSON.stringify(msg);
  if (text.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`refusing to send a ${msg.type} message of ${text.length} bytes`);
  }
  return text;
}
