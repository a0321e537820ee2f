/**
 * The UI's one link to an engine. On the desktop it is the control server's WebSocket to the
 * engine in this process; in a phone's browser it will be the in-page peer engine. Models and
 * components only ever see this interface.
 */
import type { Command, EngineEvent } from "../session/commands.ts";

export interface UiClient {
  send(c: Command): void;
  /** Subscribes to events; returns the unsubscribe. */
  onEvent(fn: (e: EngineEvent) => void): () => void;
  /** Hands a file chosen in the UI to the engine (host: add it; peer: request it). */
  upload(file: File, onProgress?: (fraction: number) => void): Promise<string | null>;
  /** The session's host clock now (ms), as well as this page can estimate it. */
  hostNowMs(): number;
  readonly connected: { value: boolean };
}

/** One exchange of the page's clock with the engine's: the round trip brackets `hostMs`. */
export interface TimeSample {
  sentMs: number;
  hostMs: number;
  receivedMs: number;
}

/**
 * Offset host − page from the exchanges with the shortest round trips: on one machine the
 * round trip is a millisecond or two, so this is far finer than a progress bar needs.
 */
export function offsetFrom(samples: TimeSample[]): number | null {
  if (!samples.length) return null;
  const best =
    [...samples].sort((a, b) => (a.receivedMs - a.sentMs) - (b.receivedMs - b.sentMs))[0];
  return best.hostMs - (best.sentMs + best.receivedMs) / 2;
}
