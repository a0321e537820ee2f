/**
 * Messages between the browser peer's engine and its decode worker (`decode_worker.ts`, served
 * as `/decode_worker.js`). Types only, so the engine's bundle does not carry the decoder.
 *
 * One worker decodes one track at a time, in the order asked. Every `decode` ends with exactly
 * one `done` or `error` for its id, unless it is cancelled first.
 */

/** What the engine sends. */
export type DecodeRequest =
  | {
    type: "decode";
    /** The track's id (its SHA-256), echoed in every reply. */
    id: string;
    /** Named in error sentences: `Cannot use "song.mp3": the file is truncated …`. */
    fileName: string;
    /** The whole MP3; transfer it (`postMessage(m, [bytes])`), the engine has no use for it. */
    bytes: ArrayBuffer;
  }
  /** Stops a queued or running decode; nothing more is sent for that id. */
  | { type: "cancel"; id: string };

/** What the worker answers. */
export type DecodeReply =
  /** Share of the file decoded, 0…1: at most 10 per track, at each new tenth. */
  | { type: "progress"; id: string; fraction: number }
  /**
   * The decoded track as int16 (the player reads value/32768): half the memory of float. The
   * buffers are transferred, not copied; each channel has its own, which may run a few thousand
   * frames past the view: the views' lengths are the track's.
   */
  | {
    type: "done";
    id: string;
    rateHz: number;
    left: Int16Array<ArrayBuffer>;
    right: Int16Array<ArrayBuffer>;
    durationSec: number;
  }
  /** A sentence for the person: what is wrong with which file. */
  | { type: "error"; id: string; message: string };
