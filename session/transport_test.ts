import { assertEquals, assertTrue } from "../tests/assert.ts";
import type { Schedule } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";
import { TrackQueue } from "./queue.ts";
import { BASE_LEAD_MS, type PlayableTrack, type ScheduleMsg, Transport } from "./transport.ts";

const T0 = 1.7e12;
const RTT_MS = 30;
const LEAD_MS = BASE_LEAD_MS + RTT_MS;

/** A 48 kHz track of `seconds`. */
const track = (id: string, seconds: number, rateHz = 48000): PlayableTrack => ({
  info: { id, title: id.toUpperCase(), artist: "", album: "", durationSec: seconds },
  rateHz,
  frames: seconds * rateHz,
});

/** A transport over a fake clock, fake timers and recorded output, as the host wires it. */
function setup(tracks: PlayableTrack[] = [track("a", 10), track("b", 20, 44100)]) {
  let nowMs = T0;
  let nextTimer = 1;
  const timers = new Map<number, { fn: () => void; atMs: number }>();
  const byId = new Map(tracks.map((t) => [t.info.id, t]));
  const queue = new TrackQueue((id) => id.toUpperCase());
  for (const t of tracks) queue.add(t.info.id);
  const sent: ScheduleMsg[] = [];
  const scheduled: Schedule[] = [];
  const events: EngineEvent[] = [];
  /** Devices not ready, per track. */
  const waiting = new Map<string, string[]>();
  let queueChanges = 0;
  const transport: Transport = new Transport({
    clock: { now: () => nowMs },
    queue,
    track: (id) => byId.get(id),
    notReady: (id) => waiting.get(id) ?? [],
    slowestRttMs: () => RTT_MS,
    dispatch: (m) => sent.push(m),
    schedule: (s) => scheduled.push(s),
    emit: (e) => events.push(e),
    queueChanged: () => {
      queueChanges++;
      transport.arm();
    },
    timers: {
      set: (fn, ms) => {
        timers.set(nextTimer, { fn, atMs: nowMs + ms });
        return nextTimer++;
      },
      clear: (id) => timers.delete(id as number),
    },
  });
  /** Moves the clock to `atMs`, firing due timers in time order. */
  const advanceTo = (atMs: number) => {
    for (;;) {
      const due = [...timers].filter(([, t]) =>
        t.atMs <= atMs
      ).sort((x, y) => x[1].atMs - y[1].atMs)[0];
      if (!due) break;
      timers.delete(due[0]);
      nowMs = Math.max(nowMs, due[1].atMs);
      due[1].fn();
    }
    nowMs = atMs;
  };
  const ofType = <K extends EngineEvent["type"]>(type: K) =>
    events.filter((e): e is Extract<EngineEvent, { type: K }> => e.type === type);
  return {
    transport,
    queue,
    sent,
    scheduled,
    events,
    waiting,
    timers,
    advanceTo,
    ofType,
    now: () => nowMs,
    queueChanges: () => queueChanges,
  };
}

Deno.test("play() schedules frame 0 at now + 120 ms + the slowest round trip, on peers and host", () => {
  const t = setup();
  t.transport.play();
  const at = T0 + LEAD_MS;
  assertEquals(t.sent[0], { type: "play", trackId: "a", fromFrame: 0, atHostMs: at });
  assertEquals(t.scheduled[0], { kind: "play", trackId: "a", fromFrame: 0, atHostMs: at });
  assertEquals(t.transport.state, { state: "playing", trackId: "a", fromFrame: 0, atHostMs: at });
  const playing = t.ofType("playing")[0];
  assertEquals([playing.trackId, playing.positionSec, playing.atHostMs], ["a", 0, at]);
});

Deno.test("play() names the devices that are not ready and schedules nothing", () => {
  const t = setup();
  t.waiting.set("a", ["Sam (downloading 40%)"]);
  t.transport.play();
  assertEquals(t.sent, []);
  assertEquals(t.scheduled, []);
  assertEquals(
    t.ofType("error")[0].message,
    'Cannot play "A" yet: not ready on Sam (downloading 40%).',
  );
  assertEquals(t.transport.state.state, "stopped");
});

Deno.test("pause() silences every device at now + lead and keeps the frame heard then", () => {
  const t = setup();
  t.transport.play();
  t.advanceTo(T0 + 2000);
  t.transport.pause();
  const at = T0 + 2000 + LEAD_MS;
  // Playing began at T0 + lead, so at `at` exactly 2 s have been heard.
  const frame = 2 * 48000;
  assertEquals(t.transport.state, { state: "paused", trackId: "a", frame });
  assertEquals(t.sent.at(-1), { type: "pause", atHostMs: at });
  assertEquals(t.scheduled.at(-1), { kind: "silence", atHostMs: at });
  const paused = t.ofType("paused")[0];
  assertEquals([paused.positionSec, paused.atHostMs], [2, at]);
  assertEquals(t.transport.armed, null);
  assertEquals(t.timers.size, 0, "no end-of-track timer while paused");
  // resume() starts from that frame, a lead time after the resume.
  t.advanceTo(T0 + 5000);
  t.transport.resume();
  assertEquals(t.sent.at(-2), {
    type: "play",
    trackId: "a",
    fromFrame: frame,
    atHostMs: T0 + 5000 + LEAD_MS,
  });
});

Deno.test("arm() sends next at the exact end of the current track once the next is ready", () => {
  const t = setup();
  t.waiting.set("b", ["Sam (waiting)"]);
  t.transport.play();
  const end = T0 + LEAD_MS + 10_000;
  assertEquals(t.transport.endsAt(), end);
  assertEquals(t.sent.filter((m) => m.type === "next"), [], "b is not ready: nothing armed");
  t.waiting.delete("b");
  t.transport.readyEverywhere("b");
  assertEquals(t.sent.at(-1), { type: "next", trackId: "b", atHostMs: end });
  assertEquals(t.scheduled.at(-1), { kind: "play", trackId: "b", fromFrame: 0, atHostMs: end });
  assertEquals(t.transport.armed, { trackId: "b", atHostMs: end });
  // Re-arming with nothing changed sends nothing again.
  const count = t.sent.length;
  t.transport.arm();
  assertEquals(t.sent.length, count);
});

Deno.test("at the end the queue moves on to the armed track without a new play", () => {
  const t = setup();
  t.transport.play();
  const end = T0 + LEAD_MS + 10_000;
  const plays = t.sent.filter((m) => m.type === "play").length;
  t.advanceTo(end - 1);
  assertEquals(t.queue.currentId, "a");
  t.advanceTo(end);
  assertEquals(t.queue.currentId, "b");
  assertEquals(t.transport.state, { state: "playing", trackId: "b", fromFrame: 0, atHostMs: end });
  assertEquals(t.sent.filter((m) => m.type === "play").length, plays, "devices already have it");
  assertEquals(t.ofType("playing").at(-1)!.atHostMs, end);
  assertEquals(t.queueChanges(), 1);
  // b is the last track: nothing armed, and its end stops the queue.
  assertEquals(t.transport.armed, null);
  const bEnd = end + 20_000;
  t.advanceTo(bEnd);
  assertEquals(t.ofType("stopped").at(-1), { type: "stopped", atHostMs: bEnd });
  assertTrue(t.ofType("notice").some((e) => e.message === "End of the queue."));
});

Deno.test("a next track not ready by the end waits, says for whom, and starts when ready", () => {
  const t = setup();
  t.waiting.set("b", ["Sam (downloading 50%)"]);
  t.transport.play();
  const end = T0 + LEAD_MS + 10_000;
  t.advanceTo(end);
  assertEquals([t.transport.state.state, t.queue.currentId], ["stopped", "b"]);
  assertTrue(t.transport.waitingToStart);
  assertEquals(
    t.ofType("notice").at(-1)!.message,
    '"B" waits for Sam (downloading 50%); it starts when they are ready (or use skip-peer NAME).',
  );
  t.advanceTo(end + 3000);
  t.waiting.delete("b");
  t.transport.readyEverywhere("b");
  assertEquals(t.sent.at(-1), {
    type: "play",
    trackId: "b",
    fromFrame: 0,
    atHostMs: end + 3000 + LEAD_MS,
  });
  assertEquals(t.transport.waitingToStart, false);
});

Deno.test("a user command cancels an automatic start that waited for devices", () => {
  const t = setup();
  t.waiting.set("b", ["Sam (waiting)"]);
  t.transport.play();
  t.advanceTo(T0 + LEAD_MS + 10_000);
  assertTrue(t.transport.waitingToStart);
  t.transport.stop();
  t.waiting.delete("b");
  t.transport.readyEverywhere("b");
  assertEquals(t.transport.state.state, "stopped");
});

Deno.test("skip() within the lead of the armed transition is refused: it is already under way", () => {
  const t = setup();
  t.transport.play();
  const end = T0 + LEAD_MS + 10_000;
  t.advanceTo(end - LEAD_MS + 1);
  t.transport.skipTrack();
  assertEquals(t.ofType("notice").at(-1)!.message, 'Already moving on to "B".');
  assertEquals(t.queue.currentId, "a");
  assertEquals(t.transport.armed, { trackId: "b", atHostMs: end });
});

Deno.test("skip() while playing starts the next track a lead time from now", () => {
  const t = setup();
  t.transport.play();
  t.advanceTo(T0 + 3000);
  t.transport.skipTrack();
  assertEquals(t.queue.currentId, "b");
  assertEquals(t.sent.at(-1), {
    type: "play",
    trackId: "b",
    fromFrame: 0,
    atHostMs: T0 + 3000 + LEAD_MS,
  });
  // At the last track there is nothing to skip to.
  t.transport.skipTrack();
  assertEquals(
    t.ofType("error").at(-1)!.message,
    "Nothing to skip to: this is the last track in the queue.",
  );
});

Deno.test("skip() to a track not ready everywhere silences the old one and waits", () => {
  const t = setup();
  t.waiting.set("b", ["Kim (waiting)"]);
  t.transport.play();
  t.advanceTo(T0 + 3000);
  t.transport.skipTrack();
  assertEquals(t.sent.at(-1), { type: "pause", atHostMs: T0 + 3000 + LEAD_MS });
  assertEquals([t.transport.state.state, t.transport.waitingToStart], ["stopped", true]);
});

Deno.test("seek() while playing restarts every device at that frame; paused, it only moves", () => {
  const t = setup();
  t.transport.seek(4);
  assertEquals(t.transport.state, { state: "paused", trackId: "a", frame: 4 * 48000 });
  assertEquals(t.sent, []);
  t.transport.play();
  assertEquals(t.sent[0], {
    type: "play",
    trackId: "a",
    fromFrame: 4 * 48000,
    atHostMs: T0 + LEAD_MS,
  });
  t.advanceTo(T0 + 1000);
  t.transport.seek(7.5);
  assertEquals(t.sent.filter((m) => m.type === "play").at(-1), {
    type: "play",
    trackId: "a",
    fromFrame: 7.5 * 48000,
    atHostMs: T0 + 1000 + LEAD_MS,
  });
  // The transition is re-planned for the new end.
  assertEquals(t.transport.armed!.atHostMs, T0 + 1000 + LEAD_MS + 2500);
  t.transport.seek(10);
  assertEquals(t.ofType("error").at(-1)!.message, 'Cannot seek to 10 s: "A" is 10.0 s long.');
});

Deno.test("stop() silences every device at now + lead and cancels the transition", () => {
  const t = setup();
  t.transport.play();
  t.advanceTo(T0 + 1000);
  t.transport.stop();
  assertEquals(t.sent.at(-1), { type: "pause", atHostMs: T0 + 1000 + LEAD_MS });
  assertEquals(t.ofType("stopped").at(-1)!.atHostMs, T0 + 1000 + LEAD_MS);
  assertEquals([t.transport.state.state, t.transport.armed, t.timers.size], ["stopped", null, 0]);
});

Deno.test("frameAt() rests on the last frame between a track's end and the queue timer", () => {
  const t = setup([track("a", 10)]);
  t.transport.play();
  assertEquals(t.transport.frameAt(T0), 0, "before it starts: frame 0");
  assertEquals(t.transport.frameAt(T0 + LEAD_MS + 1000), 48000);
  assertEquals(t.transport.frameAt(T0 + LEAD_MS + 60_000), 480000);
});

Deno.test("a late joiner gets the running play and the armed next", () => {
  const t = setup();
  assertEquals(t.transport.runningSchedule(), []);
  t.transport.play();
  const at = T0 + LEAD_MS;
  assertEquals(t.transport.runningSchedule(), [
    { type: "play", trackId: "a", fromFrame: 0, atHostMs: at },
    { type: "next", trackId: "b", atHostMs: at + 10_000 },
  ]);
});

Deno.test("removing the armed next track cancels the transition with a next without track", () => {
  const t = setup([track("a", 10), track("b", 20), track("c", 5)]);
  t.transport.play();
  const end = T0 + LEAD_MS + 10_000;
  t.queue.remove(2);
  t.transport.arm();
  assertEquals(t.sent.at(-1), { type: "next", trackId: "c", atHostMs: end });
  t.queue.remove(2);
  t.transport.arm();
  assertEquals(t.sent.at(-1), { type: "next", atHostMs: end });
  assertEquals(t.scheduled.at(-1), { kind: "silence", atHostMs: end });
  assertEquals(t.transport.armed, null);
});
