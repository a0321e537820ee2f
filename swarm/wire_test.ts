import { assertEquals, assertThrows, assertTrue } from "../tests/assert.ts";
import { CHUNK_BYTES, makeManifest, MAX_CHUNKS } from "./manifest.ts";
import {
  base64ToBytes,
  bytesToBase64,
  CHUNK_HEADER_BYTES,
  CHUNK_MAGIC,
  decodeBitfield,
  decodeWire,
  encodeChunk,
  encodeText,
  type FileOffer,
  getBit,
  MAX_OFFERS,
  MAX_TEXT_BYTES,
  setBit,
  type WireMessage,
  type WireText,
} from "./wire.ts";

const ID = "ab".repeat(32);
const ID2 = "cd".repeat(32);

function ok(data: unknown): WireMessage {
  const d = decodeWire(data);
  if (!d.ok) throw new Error(`refused: ${d.reason}`);
  return d.message;
}

function refused(data: unknown, match?: RegExp): void {
  const d = decodeWire(data);
  assertTrue(!d.ok, `accepted ${String(data).slice(0, 80)}`);
  if (match) assertTrue(match.test(d.reason), d.reason);
}

function offer(over: Partial<FileOffer> = {}): FileOffer {
  return { id: ID, name: "a.mp3", sizeBytes: 3 * CHUNK_BYTES, chunks: 3, have: "oA==", ...over };
}

Deno.test("wire: every control message round-trips", () => {
  const m = makeManifest("song.mp3", new Uint8Array(CHUNK_BYTES * 2 + 5).fill(7));
  const msgs: WireText[] = [
    { type: "files", files: [offer(), offer({ id: ID2, have: "4A==" })] },
    { type: "files", files: [] },
    { type: "have", file: ID, index: 0 },
    { type: "getManifest", file: ID },
    {
      type: "manifest",
      file: m.id,
      name: m.name,
      sizeBytes: m.sizeBytes,
      chunkBytes: m.chunkBytes,
      hashes: bytesToBase64(m.hashes),
    },
    { type: "get", file: ID, index: MAX_CHUNKS - 1 },
    { type: "cancel", file: ID, index: 5 },
    { type: "nope", file: ID, index: 5 },
    { type: "nope", file: ID },
  ];
  for (const msg of msgs) assertEquals(ok(encodeText(msg)), msg);
});

Deno.test("wire: chunk frames round-trip from every binary form", () => {
  const payload = new Uint8Array(CHUNK_BYTES).map((_, i) => i * 7);
  const frame = encodeChunk(ID, 799, payload);
  assertEquals(frame.length, CHUNK_HEADER_BYTES + CHUNK_BYTES);
  assertEquals(frame[0], CHUNK_MAGIC);
  for (const form of [frame, frame.buffer, new DataView(frame.buffer)]) {
    const m = ok(form);
    assertTrue(m.type === "chunk");
    assertEquals(m.file, ID);
    assertEquals(m.index, 799);
    assertEquals(m.bytes.length, CHUNK_BYTES);
    assertTrue(m.bytes.every((b, i) => b === payload[i]));
  }
  // A view into a larger buffer.
  const padded = new Uint8Array(frame.length + 20);
  padded.set(frame, 10);
  assertEquals((ok(padded.subarray(10, 10 + frame.length)) as { index: number }).index, 799);
  assertEquals(
    (ok(encodeChunk(ID, 0, new Uint8Array(1))) as { bytes: Uint8Array }).bytes.length,
    1,
  );
  assertThrows(() => encodeChunk(ID, 0, new Uint8Array(0)));
  assertThrows(() => encodeChunk(ID, 0, new Uint8Array(CHUNK_BYTES + 1)));
  assertThrows(() => encodeChunk(ID, MAX_CHUNKS, new Uint8Array(1)));
  assertThrows(() => encodeChunk("xyz", 0, new Uint8Array(1)));
});

Deno.test("wire: malformed binary frames are refused", () => {
  const good = encodeChunk(ID, 3, new Uint8Array(10));
  refused(good.subarray(0, CHUNK_HEADER_BYTES), /short/);
  refused(new Uint8Array(0), /short/);
  const magic = good.slice();
  magic[0] = 0x00;
  refused(magic, /starts with/);
  const index = good.slice();
  new DataView(index.buffer).setUint32(33, MAX_CHUNKS);
  refused(index, /out of range/);
  const long = new Uint8Array(CHUNK_HEADER_BYTES + CHUNK_BYTES + 1);
  long.set(good.subarray(0, CHUNK_HEADER_BYTES));
  refused(long, /too long/);
});

Deno.test("wire: malformed text frames are refused with a reason", () => {
  const cases: [unknown, RegExp][] = [
    ["", /JSON/],
    ["{", /JSON/],
    ["null", /unknown message type/],
    ["[]", /unknown message type/],
    ['"have"', /unknown message type/],
    ['{"type":"hello"}', /unknown message type/],
    ['{"type":"__proto__"}', /unknown message type/],
    ['{"type":"toString"}', /unknown message type/],
    [JSON.stringify({ type: "have", file: ID }), /lacks "index"/],
    [JSON.stringify({ type: "have", file: ID, index: 1, x: 1 }), /unknown field/],
    [JSON.stringify({ type: "have", file: ID.toUpperCase(), index: 1 }), /malformed/],
    [JSON.stringify({ type: "have", file: ID + "0", index: 1 }), /longer/],
    [JSON.stringify({ type: "have", file: 5, index: 1 }), /string/],
    [JSON.stringify({ type: "get", file: ID, index: -1 }), /within/],
    [JSON.stringify({ type: "get", file: ID, index: 1.5 }), /whole/],
    [JSON.stringify({ type: "get", file: ID, index: MAX_CHUNKS }), /within/],
    [JSON.stringify({ type: "get", file: ID, index: "1" }), /whole/],
    [JSON.stringify({ type: "cancel", file: ID }), /lacks/],
    [JSON.stringify({ type: "nope", file: ID, index: null }), /whole/],
    [JSON.stringify({ type: "files" }), /lacks "files"/],
    [JSON.stringify({ type: "files", files: {} }), /list/],
    [JSON.stringify({ type: "files", files: [offer({ name: "" })] }), /malformed/],
    [JSON.stringify({ type: "files", files: [offer({ name: "x".repeat(201) })] }), /longer/],
    [JSON.stringify({ type: "files", files: [offer({ sizeBytes: 0 })] }), /within/],
    [JSON.stringify({ type: "files", files: [offer({ sizeBytes: 51 * 2 ** 20 })] }), /within/],
    [JSON.stringify({ type: "files", files: [offer({ chunks: 4 })] }), /chunk count/],
    [JSON.stringify({ type: "files", files: [offer({ have: "oAA=" })] }), /does not fit/],
    [JSON.stringify({ type: "files", files: [offer({ have: "o*==" })] }), /malformed/],
    [JSON.stringify({ type: "files", files: [offer(), offer()] }), /repeats/],
    [
      JSON.stringify({
        type: "files",
        files: Array.from(
          { length: MAX_OFFERS + 1 },
          (_, i) => offer({ id: i.toString(16).padStart(64, "0") }),
        ),
      }),
      /more than/,
    ],
    [
      JSON.stringify({
        type: "manifest",
        file: ID,
        name: "a",
        sizeBytes: 10,
        chunkBytes: 32768,
        hashes: bytesToBase64(new Uint8Array(32)),
      }),
      /within/,
    ],
    [
      JSON.stringify({
        type: "manifest",
        file: ID,
        name: "a",
        sizeBytes: CHUNK_BYTES + 1,
        chunkBytes: CHUNK_BYTES,
        hashes: bytesToBase64(new Uint8Array(32)),
      }),
      /wrong length/,
    ],
    [`{"type":"have","pad":"${"x".repeat(MAX_TEXT_BYTES)}"}`, /exceeds/],
    [`{"type":"have","pad":"${"é".repeat(MAX_TEXT_BYTES / 2)}"}`, /exceeds/],
    [null, /unsupported/],
    [42, /unsupported/],
    [{ type: "have", file: ID, index: 1 }, /unsupported/],
    [new Blob(["x"]), /unsupported/],
  ];
  for (const [data, match] of cases) refused(data, match);
});

Deno.test("wire: decodeWire never throws on garbage", () => {
  let x = 12345;
  const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let n = 0; n < 2000; n++) {
    const len = Math.floor(rnd() * 80);
    const bytes = new Uint8Array(len).map(() => Math.floor(rnd() * 256));
    if (n % 3 === 0) bytes[0] = CHUNK_MAGIC;
    decodeWire(bytes);
    decodeWire(new TextDecoder().decode(bytes));
    const text = encodeText({ type: "files", files: [offer()] });
    const cut = Math.floor(rnd() * text.length);
    decodeWire(
      text.slice(0, cut) + String.fromCharCode(Math.floor(rnd() * 128)) + text.slice(cut + 1),
    );
  }
});

Deno.test("wire: base64 and bitfields", () => {
  for (const n of [0, 1, 2, 3, 100, 0x4000]) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 31) & 0xff);
    assertEquals(base64ToBytes(bytesToBase64(bytes)), bytes);
  }
  assertEquals(base64ToBytes("a"), null);
  assertEquals(base64ToBytes("ab=c"), null);
  assertEquals(base64ToBytes(" YQ=="), null);
  const field = new Uint8Array(2);
  setBit(field, 0);
  setBit(field, 9);
  assertEquals([...field], [0x80, 0x40]);
  assertTrue(getBit(field, 9) && !getBit(field, 8));
  setBit(field, 9, false);
  assertEquals([...field], [0x80, 0]);
  // Spare bits past the chunk count are cleared.
  assertEquals([...decodeBitfield(bytesToBase64(new Uint8Array([0xff])), 3)!], [0xe0]);
  assertEquals(decodeBitfield(bytesToBase64(new Uint8Array(2)), 3), null);
  assertThrows(
    () => encodeText({ type: "nope", file: "x".repeat(MAX_TEXT_BYTES) } as WireText),
    /refusing/,
  );
});
