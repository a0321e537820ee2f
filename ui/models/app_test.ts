import assert from "node:assert/strict";
import type { CalibratedDevice, Command, EngineEvent } from "../../session/commands.ts";
import type { TrackInfo } from "../../session/protocol.ts";
import type { UiClient } from "../client.ts";
import { offsetFrom } from "../client.ts";
import { qrPath } from "../components/qr_path.ts";
import { modelsFor } from "./app.ts";
import {
  calibrationBlocker,
  calibrationProgress,
  doneSentence,
  runningLine,
} from "./calibration.ts";
import { positionAt } from "./session.ts";

/** A client whose events the test emits and whose commands it reads back. */
function fakeClient() {
  const listeners = new Set<(e: EngineEvent) => void>();
  const sent: Command[] = [];
  const clock = { nowMs: 0 };
  const client: UiClient = {
    connected: { value: true },
    send: (c) => void sent.push(c),
    onEvent(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    upload: () => Promise.resolve(null),
    hostNowMs: () => clock.nowMs,
  };
  const emit = (e: EngineEvent) => listeners.forEach((fn) => fn(e));
  return { client, sent, emit, clock };
}

const track = (n: number, title = `Song ${n}`): TrackInfo => ({
  id: String(n).repeat(64).slice(0, 64),
  fileName: `song${n}.mp3`,
  title,
  artist: "Band",
  album: "",
  sizeBytes: 1000,
  durationSec: 100 + n,
});

Deno.test("home event shows Home with the remembered names and why we came back", () => {
  const { client, emit } = fakeClient();
  const { models } = modelsFor(client);
  assert.equal(models.session.screen.value, "connecting");
  emit({
    type: "home",
    hostName: "Alex",
    peerName: "Sam",
    sessionName: "Friday",
    address: "10.0.0.2:7420",
    port: 7420,
    message: "Host disconnected — session ended",
  });
  assert.equal(models.session.screen.value, "home");
  assert.equal(models.home.hostName.value, "Alex");
  assert.equal(models.home.peerName.value, "Sam");
  assert.equal(models.home.address.value, "10.0.0.2:7420");
  assert.equal(models.home.message.value, "Host disconnected — session ended");
  emit({
    type: "jams",
    jams: [{
      session: "Friday",
      host: "Alex",
      address: "10.0.0.2",
      port: 7420,
      peers: 2,
      maxPeers: 5,
      protocolVersion: 2,
    }],
  });
  assert.equal(models.home.jams.value.length, 1);
});

Deno.test("a host session: queue, transport anchor, peers and their download progress", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({
    type: "session",
    role: "host",
    session: "Jam",
    name: "Alex",
    port: 7420,
    host: "10.0.0.2",
  });
  assert.equal(m.session.screen.value, "host");
  assert.equal(m.session.address.value, "10.0.0.2:7420");
  emit({ type: "queue", tracks: [track(1), track(2)], current: 0 });
  assert.equal(m.queue.currentTrack.value?.title, "Song 1");
  assert.equal(m.queue.nextTrack.value?.title, "Song 2");
  emit({
    type: "playing",
    trackId: track(1).id,
    title: "Song 1",
    positionSec: 10,
    atHostMs: 1_000_000,
  });
  const t = m.session.transport.value;
  assert.equal(t.state, "playing");
  // Duration comes from the queue when the event lacks it; position is derived, not ticked.
  assert.equal((t as { durationSec: number }).durationSec, 101);
  assert.equal(positionAt(t, 1_002_500), 12.5);
  assert.equal(positionAt(t, 999_000), 10, "before the start time it rests at the anchor");
  assert.equal(positionAt(t, 9_000_000), 101, "clamped to the track's end");
  emit({ type: "paused", trackId: track(1).id, positionSec: 42, atHostMs: 1_050_000 });
  assert.equal(positionAt(m.session.transport.value, 9_000_000), 42);
  emit({
    type: "transfer",
    trackId: track(2).id,
    fileName: "song2.mp3",
    peer: "Sam",
    state: "downloading",
    progress: 0.4,
  });
  assert.equal(m.peers.progress.value.Sam[track(2).id], 0.4);
  emit({ type: "stopped", atHostMs: 1_060_000 });
  assert.equal(m.session.transport.value.state, "stopped");
});

Deno.test("requests: the host's drawer fills and empties; a peer follows its own", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  const req = { id: 3, peer: "Sam", fileName: "a.mp3", title: "A", artist: "B", sizeBytes: 9 };
  emit({ type: "request", ...req, state: "waiting" });
  assert.deepEqual(m.inbox.requests.value.map((r) => r.id), [3]);
  assert.match(m.notices.list.value.at(-1)!.message, /Sam requests "A"/);
  emit({ type: "request", ...req, state: "uploading" });
  assert.equal(m.inbox.requests.value[0].state, "uploading");
  emit({ type: "request", ...req, state: "queued" });
  assert.equal(m.inbox.requests.value.length, 0);

  emit({
    type: "request",
    id: 1,
    fileName: "x.mp3",
    title: "X",
    state: "uploading",
    progress: 0.5,
  });
  emit({ type: "request", id: 1, fileName: "x.mp3", title: "X", state: "rejected", reason: "No." });
  assert.deepEqual(
    m.inbox.mine.value.map((r) => [r.id, r.state, r.reason]),
    [[1, "rejected", "No."]],
  );
});

Deno.test("a failed transfer becomes a notice with Retry and Play without them", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "transfer-failed", peer: "Sam", trackId: "t", fileName: "a.mp3", error: "cut" });
  // The engine's sentence about the same failure is not shown twice.
  emit({
    type: "error",
    message: 'Sam could not get "a.mp3": cut. Use retry Sam to try again, or skip-peer Sam.',
  });
  const n = m.notices.list.value;
  assert.equal(n.length, 1);
  assert.deepEqual(n[0].actions?.map((a) => a.command), [
    { cmd: "retry", peer: "Sam" },
    { cmd: "skip-peer", peer: "Sam" },
  ]);
});

Deno.test("health keeps one minute per device and forgets devices that left", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  for (let i = 0; i < 70; i++) {
    emit({
      type: "health",
      atHostMs: i * 1000,
      devices: [
        { name: "Alex", host: true, clockErrorMs: 0, placementMs: -0.1 },
        ...(i < 50 ? [{ name: "Sam", host: false, clockErrorMs: 0.05, placementMs: 0.2 }] : []),
      ],
    });
  }
  assert.equal(m.peers.health.value.Alex.errorsMs.length, 60);
  assert.equal(m.peers.health.value.Alex.errorsMs[0], 0.1);
  assert.equal(m.peers.health.value.Sam, undefined);
});

Deno.test("going Home clears the session, and notices are capped", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "session", role: "peer", session: "Jam", name: "Sam", host: "Alex" });
  emit({
    type: "clock",
    locked: true,
    offsetMs: 1,
    driftPpm: 0,
    rttMs: 0.4,
    errorMs: 0.01,
    color: "green",
  });
  emit({ type: "queue", tracks: [track(1)], current: 0 });
  for (let i = 0; i < 10; i++) emit({ type: "notice", level: "info", message: `n${i}` });
  assert.equal(m.notices.list.value.length, 6);
  assert.equal(m.notices.list.value.at(-1)!.message, "n9");
  assert.equal(m.session.clock.value?.color, "green");
  emit({ type: "home", hostName: "", peerName: "Sam", sessionName: "", address: "", port: 7420 });
  assert.equal(m.session.screen.value, "home");
  assert.equal(m.queue.tracks.value.length, 0);
  assert.equal(m.session.clock.value, null);
  assert.equal(m.notices.list.value.length, 0);
});

Deno.test("the page's host-clock offset comes from the exchange with the shortest round trip", () => {
  assert.equal(offsetFrom([]), null);
  const off = offsetFrom([
    { sentMs: 0, hostMs: 5_000, receivedMs: 40 }, // slow: would say 4 980
    { sentMs: 100, hostMs: 5_101, receivedMs: 102 }, // fast: 5 000
  ]);
  assert.equal(off, 5_000);
});

Deno.test("a track ready everywhere stops counting as ready when a peer joins", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "track-ready-all", trackId: "t1", fileName: "a.mp3" });
  assert.ok(m.queue.readyAll.value.has("t1"));
  emit({ type: "peer-joined", id: 1, name: "Sam" });
  assert.equal(m.queue.readyAll.value.size, 0);
  emit({ type: "track-ready-all", trackId: "t1", fileName: "a.mp3" });
  assert.ok(m.queue.readyAll.value.has("t1"));
});

Deno.test("the host's join address, its QR code and the peer cap come with the session and go Home", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({
    type: "session",
    role: "host",
    session: "Jam",
    name: "Alex",
    port: 7420,
    host: "192.168.1.20",
    joinUrl: "http://192.168.1.20:7420/",
    joinQr: ["101", "010", "111"],
    maxPeers: 8,
  });
  assert.equal(m.session.joinUrl.value, "http://192.168.1.20:7420/");
  assert.deepEqual(m.session.joinQr.value, ["101", "010", "111"]);
  assert.equal(m.session.maxPeers.value, 8);
  emit({ type: "home", hostName: "Alex", peerName: "", sessionName: "", address: "", port: 7420 });
  assert.equal(m.session.joinUrl.value, "");
  assert.deepEqual(m.session.joinQr.value, []);
  assert.equal(m.session.maxPeers.value, 0);
  // A peer's session has no join address.
  emit({ type: "session", role: "peer", session: "Jam", name: "Sam", host: "Alex" });
  assert.equal(m.session.joinUrl.value, "");
});

Deno.test("the QR path draws each run of dark modules once, inside a 4-module quiet zone", () => {
  assert.equal(qrPath(["0110", "1001"]), "M5 4h2v1h-2zM4 5h1v1h-1zM7 5h1v1h-1z");
  assert.equal(qrPath(["111"], 0), "M0 0h3v1h-3z");
  assert.equal(qrPath([]), "");
});

Deno.test("the click test's state follows the engine and ends with the session", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "session", role: "peer", session: "Jam", name: "Sam", host: "Alex" });
  assert.equal(m.session.clicks.value, false);
  emit({ type: "clicks", on: true });
  assert.equal(m.session.clicks.value, true);
  emit({ type: "clicks", on: false });
  assert.equal(m.session.clicks.value, false);
  emit({ type: "clicks", on: true });
  emit({ type: "home", hostName: "", peerName: "Sam", sessionName: "", address: "", port: 7420 });
  assert.equal(m.session.clicks.value, false, "a new session starts without ticks");
});

const measured = (
  name: string,
  latencyMs: number | null,
  delayBeforeMs: number,
  delayMs: number,
): CalibratedDevice => ({
  name,
  host: name === "Alex",
  heard: latencyMs !== null,
  latencyMs,
  confidence: latencyMs === null ? 0.05 : 0.9,
  delayBeforeMs,
  delayMs,
});

Deno.test("a calibration runs from the host time it was seen, then shows what was set", () => {
  const { client, emit, clock } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "session", role: "host", session: "Jam", name: "Alex", port: 7420 });
  assert.equal(m.calibration.state.value.state, "idle");
  assert.equal(
    calibrationBlocker(m.calibration.state.value, 0),
    "Calibration needs at least one other device.",
  );
  assert.equal(calibrationBlocker(m.calibration.state.value, 2), null);

  clock.nowMs = 50_000;
  emit({
    type: "calibration",
    state: "running",
    devices: ["Alex", "Sam", "Kim"],
    expectedMs: 6000,
  });
  const running = m.calibration.state.value;
  assert.deepEqual(running, {
    state: "running",
    devices: ["Alex", "Sam", "Kim"],
    startedAtMs: 50_000,
    expectedMs: 6000,
  });
  assert.equal(runningLine(["Alex", "Sam", "Kim"], 6000), "Listening… Alex, Sam, Kim — about 6 s");
  assert.equal(calibrationProgress(running, 53_000), 0.5);
  assert.equal(calibrationProgress(running, 90_000), 0.95, "it never claims to be finished");
  assert.equal(calibrationProgress(running, 49_000), 0);
  assert.equal(calibrationBlocker(running, 2), "Calibration is running.");

  const devices = [
    measured("Alex", 0, 0, 0),
    measured("Sam", 41.23, 0, 41.23),
    measured("Kim", 180, 20, 180),
  ];
  emit({ type: "calibration", state: "done", devices, tookMs: 6400 });
  const done = m.calibration.state.value;
  assert.deepEqual(done, { state: "done", devices, tookMs: 6400 });
  assert.equal(calibrationProgress(done, 0), 1);
  assert.equal(calibrationBlocker(done, 2), null, "the host may calibrate again");
  assert.equal(doneSentence(devices), "All 3 devices now meet at the microphone.");
  assert.equal(
    doneSentence([measured("Alex", 0, 0, 0), measured("Sam", 0.2, 3, 3)]),
    "Both devices already met at the microphone; no delay changed.",
  );
});

Deno.test("a refused calibration keeps its sentence and what was measured", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "calibration", state: "running", devices: ["Alex", "Sam"], expectedMs: 4000 });
  const devices = [measured("Alex", 0, 0, 0), measured("Sam", null, 12, 12)];
  const message = "Calibration changed nothing: the microphone did not hear Sam.";
  emit({ type: "calibration", state: "refused", message, devices });
  assert.deepEqual(m.calibration.state.value, { state: "refused", message, devices });
  emit({ type: "calibration", state: "refused", message: "No microphone." });
  assert.deepEqual(m.calibration.state.value, {
    state: "refused",
    message: "No microphone.",
    devices: [],
  });
});

Deno.test("a calibration's result ends with the session", () => {
  const { client, emit } = fakeClient();
  const { models: m } = modelsFor(client);
  emit({ type: "session", role: "host", session: "Jam", name: "Alex", port: 7420 });
  emit({ type: "calibration", state: "running", devices: ["Alex", "Sam"], expectedMs: 4000 });
  emit({ type: "home", hostName: "Alex", peerName: "", sessionName: "", address: "", port: 7420 });
  assert.deepEqual(m.calibration.state.value, { state: "idle" }, "a new jam starts uncalibrated");
});
