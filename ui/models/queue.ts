import { computed, signal } from "@preact/signals";
import type { TrackInfo } from "../../session/protocol.ts";

/** The queue as the host has it: tracks in play order and the index of the current one. */
export function createQueueModel() {
  const tracks = signal<TrackInfo[]>([]);
  const current = signal(-1);
  return {
    tracks,
    current,
    currentTrack: computed(() => tracks.value[current.value] ?? null),
    nextTrack: computed(() => tracks.value[current.value + 1] ?? null),
    /**
     * Tracks the host said are ready on every device (`track-ready-all`), since the last peer
     * joined: a newcomer has nothing yet.
     */
    readyAll: signal<ReadonlySet<string>>(new Set()),
  };
}
export type QueueModel = ReturnType<typeof createQueueModel>;
