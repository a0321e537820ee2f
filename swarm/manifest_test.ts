import { assertEquals, assertThrows, assertTrue } from "../tests/assert.ts";
import { pseudoRandom } from "../tests/harness/bytes.ts";
import {
  CHUNK_BYTES,
  chunkCount,
  chunkRange,
  cleanFileName,
  makeManifest,
  manifestProblem,
  MAX_CHUNKS,
  MAX_FILE_BYTES,
  MAX_FILE_NAME_LENGTH,
  sizeProblem,
  verifyChunk,
  verifyManifest,
} from "./manifest.ts";

Deno.test("manifest: chunk layout, a short last chunk", () => {
  const bytes = pseudoRandom(2 * CHUNK_BYTES + 100, 1);
  const m = makeManifest("song.mp3", bytes);
  assertEquals(m.chunkBytes, CHUNK_BYTES);
  assertEquals(m.sizeBytes, bytes.length);
  assertEquals(chunkCount(m), 3);
  assertEquals(m.hashes.length, 3 * 32);
  assertEquals(chunkRange(m, 0), { start: 0, end: CHUNK_BYTES });
  assertEquals(chunkRange(m, 2), { start: 2 * CHUNK_BYTES, end: bytes.length });
  assertThrows(() => chunkRange(m, 3));
  assertThrows(() => chunkRange(m, -1));
  assertEquals(MAX_CHUNKS, 800);
});

Deno.test("manifest: the id covers the content, not the name, and is stable", () => {
  const bytes = pseudoRandom(CHUNK_BYTES + 1, 2);
  const a = makeManifest("a.mp3", bytes);
  const b = makeManifest("another name.mp3", bytes.slice());
  assertEquals(a.id, b.id);
  assertTrue(/^[0-9a-f]{64}$/.test(a.id));
  // Pinned (checked with Python hashlib): sha256("PhaseLock swarm manifest v1\n" ‖ u64 1 ‖
  // u32 65536 ‖ sha256(00)). The encoding must not change without a new wire version.
  assertEquals(
    makeManifest("x", new Uint8Array(1)).id,
    "ac1bed4765da4e0f829899ee34e144ebf79aa81daf42e843807ac9a44dbab8d3",
  );
  const c = makeManifest("a.mp3", pseudoRandom(CHUNK_BYTES + 1, 3));
  assertTrue(c.id !== a.id);
});

Deno.test("manifest: verify accepts the real one and refuses any change", () => {
  const m = makeManifest("a.mp3", pseudoRandom(3 * CHUNK_BYTES, 4));
  assertTrue(verifyManifest(m));
  assertTrue(verifyManifest({ ...m, name: "renamed" }), "the name is not covered");
  const hashes = m.hashes.slice();
  hashes[40] ^= 1;
  assertTrue(!verifyManifest({ ...m, hashes }));
  assertTrue(!verifyManifest({ ...m, sizeBytes: m.sizeBytes - 1 }));
  assertTrue(!verifyManifest({ ...m, sizeBytes: m.sizeBytes + 1 }));
  assertTrue(!verifyManifest({ ...m, chunkBytes: 32 * 1024 }));
  assertTrue(!verifyManifest({ ...m, id: "0".repeat(64) }));
  assertTrue(!verifyManifest({ ...m, id: m.id.toUpperCase() }));
  assertTrue(!verifyManifest({ ...m, hashes: m.hashes.subarray(32) }));
  assertTrue(!verifyManifest({ ...m, name: "x".repeat(MAX_FILE_NAME_LENGTH + 1) }));
  assertEquals(manifestProblem({ ...m, hashes }), "id does not match");
});

Deno.test("manifest: verifyChunk checks index, length and hash", () => {
  const bytes = pseudoRandom(2 * CHUNK_BYTES + 7, 5);
  const m = makeManifest("a.mp3", bytes);
  for (let i = 0; i < 3; i++) {
    const { start, end } = chunkRange(m, i);
    assertTrue(verifyChunk(m, i, bytes.subarray(start, end)));
  }
  const first = bytes.slice(0, CHUNK_BYTES);
  assertTrue(!verifyChunk(m, 1, first), "another chunk's bytes");
  first[100] ^= 0x80;
  assertTrue(!verifyChunk(m, 0, first), "a flipped bit");
  assertTrue(!verifyChunk(m, 2, bytes.subarray(2 * CHUNK_BYTES, 2 * CHUNK_BYTES + 6)));
  assertTrue(!verifyChunk(m, 3, bytes.subarray(0, 7)));
  assertTrue(!verifyChunk(m, -1, bytes.subarray(0, 7)));
  assertTrue(!verifyChunk(m, 0.5, bytes.subarray(0, 7)));
});

Deno.test("manifest: sizes and names", () => {
  assertThrows(() => makeManifest("empty.mp3", new Uint8Array(0)), /empty/);
  assertThrows(() => makeManifest("big.mp3", new Uint8Array(MAX_FILE_BYTES + 1)), /50 MB/);
  assertEquals(sizeProblem(MAX_FILE_BYTES), null);
  assertTrue(sizeProblem(-1) !== null);
  assertTrue(sizeProblem(1.5) !== null);
  assertEquals(cleanFileName("  a\u0000b\nc.mp3 "), "abc.mp3");
  assertEquals(cleanFileName("\u0007 "), "Untitled");
  const long = cleanFileName("x".repeat(500) + ".mp3");
  assertEquals(long.length, MAX_FILE_NAME_LENGTH);
  assertTrue(long.endsWith("….mp3"));
  // No surrogate pair is cut in half.
  const emoji = cleanFileName("😀".repeat(300));
  assertTrue(emoji.length <= MAX_FILE_NAME_LENGTH);
  assertTrue(!/[\ud800-\udbff](?![\udc00-\udfff])/.test(emoji));
  assertEquals(makeManifest("  n\u0001.mp3", new Uint8Array(3)).name, "n.mp3");
});
