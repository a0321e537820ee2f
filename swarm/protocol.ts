/**
 * Swarm mode's control protocol: JSON text frames over the WebSocket at `/swarm` on the swarm
 * server. The server introduces members, relays WebRTC signalling to one member and small state
 * messages to the whole swarm, and answers time pings; it never carries file bytes, and
 * {@link decodeToServer} is what makes sure of it: every field of every message has a type and
 * a length cap, unknown fields are refused, and a frame is at most {@link MAX_CONTROL_BYTES}.
 * File names, manifests and chunks travel only on the members' data channels ({@link
 * ./wire.ts}). Pure: the server, the page and the native test members share it.
 */
import {
  bool,
  type Check,
  fail,
  hex64,
  list,
  nullable,
  num,
  obj,
  SchemaError,
  str,
} from "./schema.ts";

export const SWARM_PROTOCOL = 1;
/** Largest control frame (bytes): an SDP offer with a few dozen candidates fits. */
export const MAX_CONTROL_BYTES = 16 * 1024;
/** Members one swarm admits. */
export const MAX_MEMBERS = 20;
export const MAX_NAME_LENGTH = 40;
/**
 * Control frames a member may send per second, averaged over the server's 10 s window, before
 * it is cut off. Joining a full swarm (19 offers, their candidates, fast pings) takes ~200.
 */
export const MAX_FRAMES_PER_SEC = 40;
/**
 * Control bytes a member may send per second, averaged over 10 s: a join's burst of offers
 * fits (~40 KB), a stream of audio does not (even 64 kbit/s is 8 KB/s).
 */
export const MAX_BYTES_PER_SEC = 6 * 1024;
/** Largest SDP accepted in a signal. */
export const MAX_SDP_LENGTH = 12 * 1024;
export const MAX_CANDIDATE_LENGTH = 512;
/** Files one member may share. */
export const MAX_SHARED_FILES = 3;

/** A swarm's id: SHA-256 of its key, lowercase hex. The server never sees the key. */
export type SwarmId = string;
/** Per-swarm member id, given by the server in join order: the lowest present one directs. */
export type MemberId = number;

export interface Member {
  id: MemberId;
  name: string;
}

export interface IceServer {
  urls: string;
  username?: string;
  credential?: string;
}

/** What the director says is playing: file `file` was at `fromSec` at server time `atMs`. */
export interface Transport {
  /** SHA-256 (hex) of the file's manifest, or null when nothing is selected. */
  file: string | null;
  playing: boolean;
  atMs: number;
  fromSec: number;
}

/** Where one member stands with one file: fraction of chunks verified and kept. */
export interface Have {
  file: string;
  progress: number;
}

/**
 * Small state messages, relayed by the server to every other member of the swarm, tagged with
 * the sender's id.
 * - `director`: the director's heartbeat (every 500 ms) with the transport; `term` grows with
 *   every change of director.
 * - `claim`: "I direct from `term` on" (Take control, or the elected successor).
 * - `resign`: the director of `term` steps down; the lowest other member succeeds.
 * - `status`: a member's progress per file, whether its clock is locked, and what it plays.
 */
export type SwarmState =
  | { kind: "director"; term: number; transport: Transport }
  | { kind: "claim"; term: number }
  | { kind: "resign"; term: number }
  | { kind: "status"; have: Have[]; locked: boolean; playing: boolean };

export interface SignalPayload {
  description?: { type: "offer" | "answer"; sdp: string };
  candidate?: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null };
}

export type ToServer =
  | { type: "join"; protocol: number; swarm: SwarmId; name: string }
  | { type: "ping"; t1: number }
  | ({ type: "signal"; to: MemberId } & SignalPayload)
  | { type: "state"; state: SwarmState }
  | { type: "bye" };

export type FromServer =
  /** Joined: your id, who is here already, and the ICE servers to use. */
  | { type: "welcome"; you: MemberId; members: Member[]; iceServers: IceServer[] }
  | { type: "joined"; member: Member }
  | { type: "left"; id: MemberId }
  | { type: "pong"; t1: number; t2: number; t3: number }
  | ({ type: "signal"; from: MemberId } & SignalPayload)
  | { type: "state"; from: MemberId; state: SwarmState }
  /** The join was refused (swarm full, other version, bad key); the socket closes. */
  | { type: "refused"; reason: string }
  /** One of your messages was refused; the connection stays. */
  | { type: "error"; message: string };

export class SwarmProtocolError extends Error {}

// ---------------------------------------------------------------- validation

const hash = hex64;
const memberId = num(1, 2 ** 31, true);
const time = num(0, 1e15);

const transport = obj({
  file: nullable(hash),
  playing: bool,
  atMs: time,
  fromSec: num(0, 24 * 3600),
});
const term = num(0, 2 ** 31, true);
const stateKinds: Record<SwarmState["kind"], Check> = {
  director: obj({ kind: str(10), term, transport }),
  claim: obj({ kind: str(10), term }),
  resign: obj({ kind: str(10), term }),
  status: obj({
    kind: str(10),
    have: list(3 * MAX_MEMBERS, obj({ file: hash, progress: num(0, 1) })),
    locked: bool,
    playing: bool,
  }),
};
const swarmState: Check = (v, p) => {
  const kind = (v as { kind?: unknown } | null)?.kind;
  if (typeof kind !== "string" || !Object.hasOwn(stateKinds, kind)) {
    fail(p, "is not a known state");
  }
  stateKinds[kind as SwarmState["kind"]](v, p);
};
const description = obj({
  type: (v, p) => v !== "offer" && v !== "answer" && fail(p, 'must be "offer" or "answer"'),
  sdp: str(MAX_SDP_LENGTH, /^v=0\r?\n/),
});
const candidate = obj({
  candidate: str(MAX_CANDIDATE_LENGTH, /^(candidate:[ -~]*)?$/),
  "sdpMid?": nullable(str(32)),
  "sdpMLineIndex?": nullable(num(0, 16, true)),
});
const signalFields = { "description?": description, "candidate?": candidate };

const toServer: Record<ToServer["type"], Check> = {
  join: obj({
    type: str(10),
    protocol: num(0, 1000, true),
    swarm: hash,
    name: str(MAX_NAME_LENGTH),
  }),
  ping: obj({ type: str(10), t1: time }),
  signal: (v, p) => {
    obj({ type: str(10), to: memberId, ...signalFields })(v, p);
    const s = v as SignalPayload;
    if (!s.description === !s.candidate) fail(p, "must carry a description or a candidate");
  },
  state: obj({ type: str(10), state: swarmState }),
  bye: obj({ type: str(10) }),
};

const member = obj({ id: memberId, name: str(MAX_NAME_LENGTH) });
const fromServer: Record<FromServer["type"], Check> = {
  welcome: obj({
    type: str(10),
    you: memberId,
    members: list(MAX_MEMBERS, member),
    iceServers: list(
      16,
      obj({ urls: str(512), "username?": str(256), "credential?": str(256) }),
    ),
  }),
  joined: obj({ type: str(10), member }),
  left: obj({ type: str(10), id: memberId }),
  pong: obj({ type: str(10), t1: time, t2: time, t3: time }),
  signal: (v, p) => obj({ type: str(10), from: memberId, ...signalFields })(v, p),
  state: obj({ type: str(10), from: memberId, state: swarmState }),
  refused: obj({ type: str(10), reason: str(400) }),
  error: obj({ type: str(10), message: str(400) }),
};

function parse<T extends { type: string }>(
  frame: string,
  checks: Record<string, Check>,
): T {
  if (typeof frame !== "string") throw new SwarmProtocolError("binary frames are not accepted");
  // A string's UTF-8 length is at least its length: a cheap first bound before encoding.
  if (frame.length > MAX_CONTROL_BYTES) {
    throw new SwarmProtocolError(`message exceeds the ${MAX_CONTROL_BYTES}-byte cap`);
  }
  if (new TextEncoder().encode(frame).byteLength > MAX_CONTROL_BYTES) {
    throw new SwarmProtocolError(`message exceeds the ${MAX_CONTROL_BYTES}-byte cap`);
  }
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    throw new SwarmProtocolError("message is not valid JSON");
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !Object.hasOwn(checks, type)) {
    throw new SwarmProtocolError(`unknown message type ${JSON.stringify(type)?.slice(0, 30)}`);
  }
  try {
    checks[type](value, type);
  } catch (e) {
    throw e instanceof SchemaError ? new SwarmProtocolError(e.message) : e;
  }
  return value as T;
}

/** Validates a member's frame (the server calls this on every frame it receives). */
export function decodeToServer(frame: unknown): ToServer {
  return parse<ToServer>(frame as string, toServer);
}

/** Validates the server's frame (members call this on every frame they receive). */
export function decodeFromServer(frame: unknown): FromServer {
  return parse<FromServer>(frame as string, fromServer);
}

export function encode(m: ToServer | FromServer): string {
  const text = JSON.stringify(m);
  if (new TextEncoder().encode(text).byteLength > MAX_CONTROL_BYTES) {
    throw new SwarmProtocolError(`refusing to send a ${m.type} message of ${text.length} bytes`);
  }
  return text;
}
