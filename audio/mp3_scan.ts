/**
 * Walks the MPEG audio frames of a file to decide, before decoding, whether it is an MP3 we
 * can play: the decoder alone happily plays the first half of a truncated file, or skips a
 * text file renamed to `.mp3` with no complaint. Pure: bytes in, facts or a reason out.
 */

export const MAX_FILE_BYTES = 50 * 1024 * 1024;

export interface Mp3Facts {
  frames: number;
  rateHz: number;
  channels: 1 | 2;
  /** Duration from the frame count (exact up to the encoder's delay and padding). */
  durationSec: number;
  /** Frame count declared by a Xing/Info tag, if any. */
  declaredFrames: number | null;
}

export class Mp3FormatError extends Error {
  override name = "Mp3FormatError";
}

const BITRATES_KBPS = {
  v1l1: [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  v1l2: [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  v1l3: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  v2l1: [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  v2l23: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const RATES = { 3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000] };

export interface FrameHeader {
  layer: 1 | 2 | 3;
  mpeg1: boolean;
  rateHz: number;
  channels: 1 | 2;
  bytes: number;
  samples: number;
}

/** Parses a 4-byte frame header at `at`, or null if there is none. */
export function parseHeader(b: Uint8Array, at: number): FrameHeader | null {
  if (at + 4 > b.length || b[at] !== 0xff || (b[at + 1] & 0xe0) !== 0xe0) return null;
  const version = (b[at + 1] >> 3) & 3; // 3 = MPEG1, 2 = MPEG2, 0 = MPEG2.5
  const layerBits = (b[at + 1] >> 1) & 3;
  const brIndex = b[at + 2] >> 4;
  const srIndex = (b[at + 2] >> 2) & 3;
  if (version === 1 || layerBits === 0 || brIndex === 0 || brIndex === 15 || srIndex === 3) {
    return null;
  }
  const layer = (4 - layerBits) as 1 | 2 | 3;
  const mpeg1 = version === 3;
  const table = mpeg1
    ? (layer === 1 ? BITRATES_KBPS.v1l1 : layer === 2 ? BITRATES_KBPS.v1l2 : BITRATES_KBPS.v1l3)
    : (layer === 1 ? BITRATES_KBPS.v2l1 : BITRATES_KBPS.v2l23);
  const bitrate = table[brIndex] * 1000;
  const rateHz = RATES[version as 3 | 2 | 0][srIndex];
  const pad = (b[at + 2] >> 1) & 1;
  const channels = ((b[at + 3] >> 6) === 3 ? 1 : 2) as 1 | 2;
  let bytes: number, samples: number;
  if (layer === 1) {
    bytes = (Math.floor((12 * bitrate) / rateHz) + pad) * 4;
    samples = 384;
  } else {
    const perFrame = layer === 3 && !mpeg1 ? 576 : 1152;
    bytes = Math.floor((perFrame / 8) * bitrate / rateHz) + pad;
    samples = perFrame;
  }
  return { layer, mpeg1, rateHz, channels, bytes, samples };
}

function id3v2Length(b: Uint8Array): number {
  if (b.length < 10 || b[0] !== 0x49 || b[1] !== 0x44 || b[2] !== 0x33) return 0;
  const size = (b[6] << 21) | (b[7] << 14) | (b[8] << 7) | b[9];
  const footer = (b[5] & 0x10) ? 10 : 0;
  return 10 + size + footer;
}

/** Reads the Xing/Info tag's frame count from the first frame, if present. */
function xingFrames(b: Uint8Array, at: number, h: FrameHeader): number | null {
  const side = h.mpeg1 ? (h.channels === 1 ? 17 : 32) : (h.channels === 1 ? 9 : 17);
  const p = at + 4 + side;
  if (p + 12 > b.length) return null;
  const tag = String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3]);
  if (tag !== "Xing" && tag !== "Info") return null;
  const flags = (b[p + 4] << 24) | (b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7];
  if (!(flags & 1)) return null;
  return ((b[p + 8] << 24) | (b[p + 9] << 16) | (b[p + 10] << 8) | b[p + 11]) >>> 0;
}

/**
 * Checks that `bytes` is a complete MPEG-1/2 Layer III stream. Throws {@link Mp3FormatError}
 * whose message completes the sentence `Cannot use "name": …`.
 */
export function scanMp3(bytes: Uint8Array): Mp3Facts {
  if (bytes.length === 0) throw new Mp3FormatError("the file is empty");
  if (bytes.length > MAX_FILE_BYTES) {
    throw new Mp3FormatError(
      `the file is ${(bytes.length / 1048576).toFixed(1)} MB; the limit is ${
        MAX_FILE_BYTES / 1048576
      } MB`,
    );
  }
  let at = id3v2Length(bytes);
  // Find the first header that is followed by another one where it says (no false sync).
  let first: FrameHeader | null = null;
  const searchEnd = Math.min(bytes.length, at + 64 * 1024);
  for (; at < searchEnd; at++) {
    const h = parseHeader(bytes, at);
    if (!h) continue;
    const next = at + h.bytes;
    if (next === bytes.length || parseHeader(bytes, next)?.rateHz === h.rateHz) {
      first = h;
      break;
    }
  }
  if (!first) throw new Mp3FormatError("no MPEG audio frames found (is it really an MP3?)");
  if (first.layer !== 3) {
    throw new Mp3FormatError(`it is MPEG layer ${first.layer} audio, not MP3 (layer 3)`);
  }
  const declaredFrames = xingFrames(bytes, at, first);
  let frames = 0;
  let samples = 0;
  while (at < bytes.length) {
    const h = parseHeader(bytes, at);
    if (!h || h.rateHz !== first.rateHz) break; // trailing tag (ID3v1/APE) or junk
    if (at + h.bytes > bytes.length) {
      throw new Mp3FormatError(`the file is truncated (it ends inside audio frame ${frames + 1})`);
    }
    at += h.bytes;
    frames++;
    samples += h.samples;
  }
  // The Xing/Info frame itself is silent and counted by the tag as not part of the audio.
  const audioFrames = declaredFrames !== null ? frames - 1 : frames;
  if (declaredFrames !== null && audioFrames < declaredFrames) {
    throw new Mp3FormatError(
      `the file is truncated (${audioFrames} of ${declaredFrames} audio frames present)`,
    );
  }
  if (audioFrames < 1) throw new Mp3FormatError("it contains no audio frames");
  return {
    frames: audioFrames,
    rateHz: first.rateHz,
    channels: first.channels,
    durationSec: (samples - (declaredFrames !== null ? first.samples : 0)) / first.rateHz,
    declaredFrames,
  };
}
