import { assertEquals } from "../tests/assert.ts";
import type { Schedule } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";
import { PeerPlayback, SongRequests } from "./peer_playback.ts";
import type { TrackInfo } from "./protocol.ts";

const A = "a".repeat(64), B = "b".repeat(64);
const T0 = 1.7e12;
const info = (id: string, title: string): TrackInfo => ({
  id,
  fileName: `${title}.mp3`,
  title,
  sizeBytes: 1000,
  durationSec: 10,
  rateHz: 48000,
  artist: "",
  album: "",
});

function setup(resyncNoticeMs?: number) {
  const schedules: Schedule[] = [];
  const events: EngineEvent[] = [];
  const tracks = new Map([[A, info(A, "Alpha")], [B, info(B, "Bravo")]]);
  const p = new PeerPlayback({
    schedule: (s) => schedules.push(s),
    emit: (e) => events.push(e),
    track: (id) => tracks.get(id),
    rateOf: () => 48000,
    resyncNoticeMs,
  });
  return { p, schedules, events };
}

Deno.test("play, pause and next reach the output and the screens; a pause says where it left", () => {
  const { p, schedules, events } = setup();
  p.onSchedule({ type: "play", trackId: A, fromFrame: 48000, atHostMs: T0 });
  p.onSchedule({ type: "pause", atHostMs: T0 + 2500 });
  p.onSchedule({ type: "next", trackId: B, atHostMs: T0 + 9000 });
  assertEquals(schedules, [
    { kind: "play", trackId: A, fromFrame: 48000, atHostMs: T0 },
    { kind: "silence", atHostMs: T0 + 2500 },
    { kind: "play", trackId: B, fromFrame: 0, atHostMs: T0 + 9000 },
  ]);
  assertEquals(events.map((e) => e.type), ["playing", "paused", "next"]);
  assertEquals(events[1], { type: "paused", trackId: A, positionSec: 3.5, atHostMs: T0 + 2500 });
  assertEquals((events[2] as { title: string }).title, "Bravo");
});

Deno.test("a transition the player made shows the new track; the end of the queue is a stop", () => {
  const { p, events } = setup();
  p.onSchedule({ type: "play", trackId: A, fromFrame: 0, atHostMs: T0 });
  p.onPlayerEvent({ type: "started", trackId: A, fromFrame: 0, atHostMs: T0 });
  p.onPlayerEvent({ type: "started", trackId: B, fromFrame: 0, atHostMs: T0 + 10_000 });
  p.onPlayerEvent({ type: "ended", trackId: B, atHostMs: T0 + 20_000 });
  assertEquals(events.map((e) => e.type), [
    "playing",
    "started",
    "started",
    "playing",
    "ended",
    "stopped",
  ]);
  assertEquals((events[3] as { title: string }).title, "Bravo");
});

Deno.test("re-placements below the notice threshold are quiet; larger ones are a warning", () => {
  const { p, events } = setup(100);
  p.onPlayerEvent({ type: "resync", trackId: A, errorMs: 6 });
  assertEquals(events, []);
  p.onPlayerEvent({ type: "resync", trackId: A, errorMs: -250 });
  assertEquals(events[0], {
    type: "notice",
    level: "warn",
    message: "Resynchronised playback (was -250.0 ms off).",
  });
});

Deno.test("song requests are reported until the host's final word, then forgotten", () => {
  const events: EngineEvent[] = [];
  const r = new SongRequests((e) => events.push(e));
  const id = r.add("x.mp3", "X", new Uint8Array(3));
  r.event(id, "sent");
  r.result({ type: "requestResult", requestId: id, outcome: "waiting" });
  assertEquals(r.get(id)?.title, "X");
  r.result({ type: "requestResult", requestId: id, outcome: "rejected", reason: "No." });
  assertEquals(r.get(id), undefined);
  assertEquals(events.map((e) => (e as { state: string }).state), ["sent", "waiting", "rejected"]);
});
