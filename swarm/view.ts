/**
 * What the swarm screens show and what they can ask for: the swarm member engine
 * (`swarm/member.ts`) publishes a {@link SwarmView} after every change and takes
 * {@link SwarmActions}; components only render the view. Pure types.
 */
import type { MemberId } from "./protocol.ts";
import type { FileInfo } from "./exchange.ts";

export type SwarmPhase = "home" | "joining" | "joined" | "reconnecting";

export interface SwarmMemberView {
  id: MemberId;
  name: string;
  me: boolean;
  director: boolean;
  /** A data channel to this member is open (always true for me). */
  linked: boolean;
  /** Its clock is locked to the server's. */
  locked: boolean;
  /** Its progress on the selected file, 0..1, when it said. */
  progress?: number;
}

/** A file of the swarm as this page shows it: the exchange's facts, and whether it plays here. */
export interface SwarmFileView extends FileInfo {
  /** Decoded and ready to play here. */
  playable: boolean;
  durationSec?: number;
}

export interface SwarmView {
  phase: SwarmPhase;
  /** The sentence Home shows (why we are back, or why the join failed). */
  homeMessage?: string;
  swarmName: string;
  /** The name this device used last (remembered), offered on the join form. */
  savedName?: string;
  me: { id: MemberId; name: string } | null;
  /** The link to the server. */
  link: "ok" | "offline" | "reconnecting";
  clock: { locked: boolean; rttMs: number; errorMs: number } | null;
  members: SwarmMemberView[];
  director: MemberId | null;
  iAmDirector: boolean;
  files: SwarmFileView[];
  /** The director's transport: the selected file, whether it plays, and where (live). */
  transport: {
    file: string | null;
    playing: boolean;
    positionSec: number;
    durationSec: number | null;
  };
  /**
   * One line about what this device is doing: "Syncing clock…", "Waiting for director",
   * "Missing file", "Fetching 40 %", "Playing", "Ready".
   */
  status: string;
  /** Director only: members still fetching the selected file, with their progress. */
  waitingFor: { id: MemberId; name: string; progress: number }[];
  speakerDelayMs: number;
  clicks: boolean;
  volume: number;
  muted: boolean;
  /** The audio context needs a tap (iOS, a frozen context). */
  needsTap: boolean;
  notices: { id: number; level: "info" | "warn" | "error"; text: string }[];
}

export interface SwarmActions {
  /** Call from the Join button's handler (the audio context is unlocked in the gesture). */
  join(key: string, name: string): void;
  leave(): void;
  /** Shares a file from this device (at most 3). Resolves to an error sentence, or null. */
  share(file: File): Promise<string | null>;
  setEnabled(fileId: string, on: boolean): void;
  /** Director: select the file to play (stops what plays). */
  select(fileId: string): void;
  /** Director: play the selected file from the start, once every member has it. */
  play(): void;
  /** Director: start now with the members that are ready; the others join in when they are. */
  startNow(): void;
  stop(): void;
  takeControl(): void;
  resign(): void;
  setDelay(ms: number): void;
  setClicks(on: boolean): void;
  setVolume(level: number, muted: boolean): void;
  tap(): void;
  dismiss(noticeId: number): void;
}
