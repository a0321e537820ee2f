import { signal } from "@preact/signals";
import type { DeviceHealth } from "../../session/commands.ts";
import type { PeerInfo } from "../../session/protocol.ts";

/** One health sample per second for a minute. */
export const HEALTH_SAMPLES = 60;

/** The jam's peers as the host lists them, and each device's recent sync estimate. */
export function createPeersModel() {
  return {
    peers: signal<PeerInfo[]>([]),
    /** Per device name: the estimated sync error (ms), newest last. */
    health: signal<Record<string, { host: boolean; errorsMs: number[] }>>({}),
    /** Download progress per peer name and track id (0..1), from `transfer` events. */
    progress: signal<Record<string, Record<string, number>>>({}),
  };
}
export type PeersModel = ReturnType<typeof createPeersModel>;

/** The estimate the sync panel draws: clock noise and placement error together. */
export function healthError(d: DeviceHealth): number {
  return Math.abs(d.placementMs) + d.clockErrorMs;
}
