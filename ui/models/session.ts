import { computed, signal } from "@preact/signals";

export type Screen = "connecting" | "home" | "host" | "peer";

/** Where the transport is: an anchor (position at a host time) the UI extrapolates. */
export type TransportState =
  | { state: "stopped" }
  | {
    state: "playing" | "paused";
    trackId: string;
    title: string;
    artist: string;
    durationSec: number;
    /** Position at `atHostMs` (paused: where it rests). */
    positionSec: number;
    atHostMs: number;
  };

/** The session this app is in, and this device's own output. */
export function createSessionModel() {
  const screen = signal<Screen>("connecting");
  return {
    screen,
    role: computed(
      () => (screen.value === "host" || screen.value === "peer" ? screen.value : null),
    ),
    session: signal(""),
    myName: signal(""),
    /** Peer: the host's display name. */
    hostName: signal(""),
    /** Host: the LAN address and port peers use. */
    address: signal(""),
    /** Where covers are served (`http://HOST:PORT`). */
    jamUrl: signal(""),
    /** Host: the page phones and laptops open to join (`http://LAN-ADDRESS:PORT/`). */
    joinUrl: signal(""),
    /** Host: `joinUrl` as QR modules, one `0`/`1` string per row (1 = dark). */
    joinQr: signal<string[]>([]),
    /** Host: how many peers the jam admits (0: not said). */
    maxPeers: signal(0),
    audio: signal<{ backend: string; audible: boolean; warning?: string } | null>(null),
    /** Peer: its clock to the host. */
    clock: signal<{ color: string; rttMs: number; locked: boolean } | null>(null),
    transport: signal<TransportState>({ state: "stopped" }),
    volume: signal({ level: 1, muted: false }),
    device: signal({ speakerDelayMs: 0, channel: "stereo" }),
    /** The jam's click test: every device ticks at each whole host second while on. */
    clicks: signal(false),
    /** The queue goes on with this title at this host time (peers are told). */
    next: signal<{ title: string | null; atHostMs: number } | null>(null),
  };
}
export type SessionModel = ReturnType<typeof createSessionModel>;

/** Position (s) the transport is at, host time `nowMs`; clamped to the track. */
export function positionAt(t: TransportState, nowMs: number): number {
  if (t.state === "stopped") return 0;
  if (t.state === "paused") return t.positionSec;
  const sec = t.positionSec + Math.max(0, nowMs - t.atHostMs) / 1000;
  return t.durationSec > 0 ? Math.min(sec, t.durationSec) : sec;
}
