import { assertEquals, assertThrows, assertTrue } from "../tests/assert.ts";
import { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from "./protocol.ts";

const SHA = "a".repeat(64);
const hello = {
  type: "hello",
  protocolVersion: PROTOCOL_VERSION,
  name: "Sam",
  client: "native",
  audio: { backend: "pulse", device: true },
} as const;

Deno.test("decodeMessage() accepts well-formed messages in the right direction", () => {
  assertEquals(decodeMessage(JSON.stringify(hello), "peer"), hello);
  const play = { type: "play", trackId: SHA, fromFrame: 0, atHostMs: 1.75e12 } as const;
  assertEquals(decodeMessage(encodeMessage(play), "host"), play);
});

Deno.test("decodeMessage() names the offending field", () => {
  assertThrows(
    () => decodeMessage(JSON.stringify({ ...hello, name: 5 }), "peer"),
    /hello\.name must be a string/,
  );
  assertThrows(
    () => decodeMessage(JSON.stringify({ ...hello, extra: 1 }), "peer"),
    /hello\.extra is not a known field/,
  );
  assertThrows(
    () =>
      decodeMessage(
        JSON.stringify({
          type: "trackState",
          trackId: "../../etc/passwd",
          state: "ready",
          progress: 1,
        }),
        "peer",
      ),
    /SHA-256/,
  );
  assertThrows(
    () =>
      decodeMessage(
        JSON.stringify({ type: "play", trackId: SHA, fromFrame: 0, atHostMs: NaN }),
        "host",
      ),
    /finite/,
  );
});

Deno.test("decodeMessage() refuses host messages from peers and the reverse", () => {
  assertThrows(
    () => decodeMessage(JSON.stringify({ type: "pause", atHostMs: 1.75e12 }), "peer"),
    /a peer may not send "pause"/,
  );
  assertThrows(() => decodeMessage(JSON.stringify(hello), "host"), /a host may not send "hello"/);
});

Deno.test("decodeMessage() enforces the size cap before parsing", () => {
  const big = JSON.stringify({ ...hello, name: "x".repeat(MAX_MESSAGE_BYTES) });
  assertThrows(
    () => decodeMessage(big, "peer"),
    new RegExp(`exceeds the ${MAX_MESSAGE_BYTES}-byte cap`),
  );
  // Multi-byte characters: under the cap in UTF-16 units, over it in UTF-8 bytes.
  const wide = JSON.stringify({ ...hello, name: "é".repeat(Math.ceil(MAX_MESSAGE_BYTES * 0.6)) });
  assertThrows(() => decodeMessage(wide, "peer"), /cap/);
});

Deno.test("decodeMessage() never throws anything but ProtocolError on random input (fuzz)", () => {
  let seed = 1234;
  const rand = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const atoms = [
    '"type"',
    '"hello"',
    '"play"',
    ":",
    ",",
    "{",
    "}",
    "[",
    "]",
    "1e400",
    "-0",
    "null",
    '"x"',
    "true",
    '"protocolVersion"',
    "1",
    '"\\u0000"',
    '"trackId"',
    '"' + SHA + '"',
  ];
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    const n = 1 + Math.floor(rand() * 14);
    let s = "";
    for (let k = 0; k < n; k++) s += atoms[Math.floor(rand() * atoms.length)];
    if (rand() < 0.3) s = `{"type":"${["hello", "clock", "play", "trackState"][i % 4]}",${s}}`;
    try {
      decodeMessage(s, rand() < 0.5 ? "peer" : "host");
      accepted++;
    } catch (e) {
      assertEquals((e as Error).name, "ProtocolError", `input ${s}`);
    }
  }
  assertTrue(accepted < 50, "random junk is almost never a valid message");
});

Deno.test("decodeMessage() mutations of a valid message are rejected or still valid, never crash", () => {
  const base = JSON.stringify(hello);
  for (let i = 0; i < base.length; i++) {
    for (const c of ['"', "}", "0", "\\"]) {
      const s = base.slice(0, i) + c + base.slice(i + 1);
      try {
        const m = decodeMessage(s, "peer");
        assertEquals(m.type, "hello");
      } catch (e) {
        assertEquals((e as Error).name, "ProtocolError");
      }
    }
  }
});

Deno.test("a full queue (100 tracks, every text at its limit, 3-byte UTF-8) fits in one frame", () => {
  const text = "音".repeat(255);
  const track = (i: number) => ({
    id: i.toString(16).padStart(64, "0"),
    fileName: text,
    title: text,
    artist: text,
    album: text,
    sizeBytes: 50 * 1024 * 1024,
    durationSec: 3000.123456789,
    cover: { mime: "image/jpeg", sizeBytes: 1048576 },
  });
  const msg = {
    type: "queue",
    tracks: Array.from({ length: 100 }, (_, i) => track(i)),
    current: 99,
  };
  const frame = encodeMessage(msg as Parameters<typeof encodeMessage>[0]);
  const back = decodeMessage(frame, "host") as { tracks: unknown[] };
  assertEquals(back.tracks.length, 100);
  const over = { ...msg, tracks: [...msg.tracks, track(100)] };
  assertThrows(() => decodeMessage(JSON.stringify(over), "host"), /at most 100 items/);
});

Deno.test("clicks goes both ways: a peer asks, the host says; only `on`, a boolean", () => {
  for (const on of [true, false]) {
    const m = { type: "clicks", on } as const;
    assertEquals(decodeMessage(encodeMessage(m), "peer"), m);
    assertEquals(decodeMessage(encodeMessage(m), "host"), m);
  }
  assertThrows(
    () => decodeMessage('{"type":"clicks"}', "peer"),
    /clicks\.on must be true or false/,
  );
  assertThrows(
    () => decodeMessage('{"type":"clicks","on":"yes"}', "host"),
    /clicks\.on must be true or false/,
  );
  assertThrows(
    () => decodeMessage('{"type":"clicks","on":true,"forMs":60000}', "peer"),
    /clicks\.forMs is not a known field/,
  );
  // Sharing one type leaves the direction check of the others as it was.
  assertThrows(
    () => decodeMessage(JSON.stringify({ type: "heartbeat", hostMs: 1.75e12 }), "peer"),
    /a peer may not send "heartbeat"/,
  );
});

Deno.test("delay: only the host sets a peer's speaker delay, within 0–500 ms", () => {
  const m = { type: "delay", speakerDelayMs: 37.25 } as const;
  assertEquals(decodeMessage(encodeMessage(m), "host"), m);
  assertThrows(() => decodeMessage(encodeMessage(m), "peer"), /a peer may not send "delay"/);
  for (const bad of [-1, 500.5, "37"]) {
    assertThrows(
      () => decodeMessage(JSON.stringify({ type: "delay", speakerDelayMs: bad }), "host"),
      /delay\.speakerDelayMs/,
    );
  }
});
