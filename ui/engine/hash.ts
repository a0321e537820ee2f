/** SHA-256 for web pages: plain-http pages have no `crypto.subtle`, so `@noble/hashes`. */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export { sha256 };

/** The lowercase hex SHA-256 of `bytes`: a track's identity. */
export function sha256Hex(bytes: Uint8Array): string {
  return bytesToHex(sha256(bytes));
}
