/**
 * All of the UI's state, built from one client and updated by one pure function over the
 * engine's event union. Components only render these models and send commands.
 */
import { batch } from "@preact/signals";
import type { EngineEvent } from "../../session/commands.ts";
import type { PeerInfo, TrackInfo } from "../../session/protocol.ts";
import type { UiClient } from "../client.ts";
import { createCalibrationModel } from "./calibration.ts";
import { createHomeModel } from "./home.ts";
import { createInboxModel, type InboxItem } from "./inbox.ts";
import { createNoticesModel, pushNotice } from "./notices.ts";
import { createPeersModel, HEALTH_SAMPLES, healthError } from "./peers.ts";
import { createQueueModel } from "./queue.ts";
import { createSessionModel } from "./session.ts";

export function createModels() {
  return {
    home: createHomeModel(),
    session: createSessionModel(),
    queue: createQueueModel(),
    peers: createPeersModel(),
    inbox: createInboxModel(),
    notices: createNoticesModel(),
    calibration: createCalibrationModel(),
  };
}
export type Models = ReturnType<typeof createModels>;

/** Builds the models and keeps them current from the client's events. */
export function modelsFor(client: UiClient): { models: Models; dispose: () => void } {
  const models = createModels();
  const dispose = client.onEvent((e) => applyEvent(models, e, client.hostNowMs()));
  return { models, dispose };
}

/** Requests the host still has to decide (or is receiving). */
const OPEN_REQUEST = new Set(["waiting", "uploading"]);

/**
 * Applies one engine event to the models (batched: one render per event). `nowMs` is the host
 * time it arrived: what a calibration's progress is measured from.
 */
export function applyEvent(m: Models, e: EngineEvent, nowMs = 0): void {
  batch(() => apply(m, e, nowMs));
}

function apply(m: Models, e: EngineEvent, nowMs: number): void {
  const s = m.session;
  switch (e.type) {
    case "home":
      resetSession(m);
      m.home.hostName.value = e.hostName;
      m.home.peerName.value = e.peerName;
      m.home.sessionName.value = e.sessionName;
      m.home.address.value = e.address;
      m.home.port.value = e.port;
      m.home.message.value = e.message ?? null;
      s.screen.value = "home";
      return;
    case "jams":
      m.home.jams.value = e.jams;
      return;
    case "session":
      s.screen.value = e.role;
      s.session.value = e.session;
      s.myName.value = e.name;
      s.jamUrl.value = e.jamUrl ?? "";
      s.joinUrl.value = e.joinUrl ?? "";
      s.joinQr.value = e.joinQr ?? [];
      s.maxPeers.value = e.maxPeers ?? 0;
      if (e.role === "host") s.address.value = `${e.host ?? "127.0.0.1"}:${e.port}`;
      else s.hostName.value = e.host ?? "";
      m.home.message.value = null;
      return;
    case "audio":
      s.audio.value = { backend: e.backend, audible: e.audible, warning: e.warning };
      return;
    case "clock":
      s.clock.value = { color: e.color, rttMs: e.rttMs, locked: e.locked };
      return;
    case "volume":
      s.volume.value = { level: e.level, muted: e.muted };
      return;
    case "device":
      s.device.value = { speakerDelayMs: e.speakerDelayMs, channel: e.channel };
      return;
    case "clicks":
      s.clicks.value = e.on;
      return;
    case "calibration":
      m.calibration.state.value = e.state === "running"
        ? { state: "running", devices: e.devices, startedAtMs: nowMs, expectedMs: e.expectedMs }
        : e.state === "done"
        ? { state: "done", devices: e.devices, tookMs: e.tookMs }
        : { state: "refused", message: e.message, devices: e.devices ?? [] };
      return;
    case "queue":
      m.queue.tracks.value = e.tracks as TrackInfo[];
      m.queue.current.value = e.current;
      return;
    case "next":
      s.next.value = { title: e.title, atHostMs: e.atHostMs };
      return;
    case "playing":
      s.transport.value = {
        state: "playing",
        trackId: e.trackId,
        title: e.title,
        artist: e.artist ?? "",
        durationSec: e.durationSec ?? trackById(m, e.trackId)?.durationSec ?? 0,
        positionSec: e.positionSec,
        atHostMs: e.atHostMs,
      };
      return;
    case "paused": {
      const t = trackById(m, e.trackId) ?? m.queue.currentTrack.value;
      const was = s.transport.value;
      s.transport.value = {
        state: "paused",
        trackId: t?.id ?? e.trackId,
        title: t?.title ?? (was.state !== "stopped" ? was.title : ""),
        artist: t?.artist ?? "",
        durationSec: t?.durationSec ?? 0,
        positionSec: e.positionSec,
        atHostMs: e.atHostMs,
      };
      return;
    }
    case "stopped":
      s.transport.value = { state: "stopped" };
      s.next.value = null;
      return;
    case "peers":
      m.peers.peers.value = e.peers as PeerInfo[];
      return;
    case "transfer":
      if (e.peer) {
        const all = { ...m.peers.progress.value };
        all[e.peer] = { ...all[e.peer], [e.trackId]: e.progress };
        m.peers.progress.value = all;
      }
      return;
    case "health": {
      const next: Record<string, { host: boolean; errorsMs: number[] }> = {};
      for (const d of e.devices) {
        const old = m.peers.health.value[d.name]?.errorsMs ?? [];
        next[d.name] = { host: d.host, errorsMs: [...old, healthError(d)].slice(-HEALTH_SAMPLES) };
      }
      m.peers.health.value = next;
      return;
    }
    case "inbox":
      m.inbox.requests.value = e.requests.map((r) => ({ ...r }));
      return;
    case "request":
      if (e.peer !== undefined) {
        // Host: a request arrived or changed state.
        const item: InboxItem = {
          id: e.id,
          peer: e.peer,
          fileName: e.fileName,
          title: e.title,
          artist: e.artist ?? "",
          state: e.state,
        };
        const rest = m.inbox.requests.value.filter((r) => r.id !== e.id);
        m.inbox.requests.value = OPEN_REQUEST.has(e.state) ? [...rest, item] : rest;
        if (e.state === "waiting") {
          pushNotice(m.notices, {
            level: "info",
            message: `${e.peer} requests "${e.title || e.fileName}".`,
          });
        }
      } else {
        const rest = m.inbox.mine.value.filter((r) => r.id !== e.id);
        m.inbox.mine.value = [...rest, {
          id: e.id,
          fileName: e.fileName,
          title: e.title,
          state: e.state,
          progress: e.progress,
          reason: e.reason,
        }].sort((a, b) => a.id - b.id);
      }
      return;
    case "transfer-failed":
      pushNotice(m.notices, {
        level: "error",
        message: `${e.peer} could not get "${e.fileName}": ${e.error}.`,
        actions: [
          { label: "Retry", command: { cmd: "retry", peer: e.peer } },
          { label: "Play without them", command: { cmd: "skip-peer", peer: e.peer } },
        ],
      });
      return;
    case "notice":
      pushNotice(m.notices, { level: e.level, message: e.message });
      return;
    case "error":
      // transfer-failed already said it, with buttons.
      if (/^.+ could not get ".+": .*Use retry /.test(e.message)) return;
      pushNotice(m.notices, { level: "error", message: e.message });
      return;
    case "track-ready-all":
      m.queue.readyAll.value = new Set([...m.queue.readyAll.value, e.trackId]);
      return;
    case "peer-joined":
      m.queue.readyAll.value = new Set();
      pushNotice(m.notices, { level: "info", message: `${e.name} joined.` });
      return;
    case "peer-left":
      pushNotice(m.notices, { level: "info", message: `${e.name} left.` });
      return;
    case "peer-refused":
      pushNotice(m.notices, { level: "warn", message: `Turned away ${e.name}: ${e.reason}` });
      return;
    case "host-disconnected":
      // The app goes Home with this sentence.
      return;
    default:
      return;
  }
}

function trackById(m: Models, id: string): TrackInfo | undefined {
  return m.queue.tracks.value.find((t) => t.id === id);
}

function resetSession(m: Models) {
  const s = m.session;
  s.session.value = "";
  s.myName.value = "";
  s.hostName.value = "";
  s.address.value = "";
  s.joinUrl.value = "";
  s.joinQr.value = [];
  s.maxPeers.value = 0;
  s.clock.value = null;
  s.clicks.value = false;
  m.calibration.state.value = { state: "idle" };
  s.transport.value = { state: "stopped" };
  s.next.value = null;
  m.queue.tracks.value = [];
  m.queue.current.value = -1;
  m.queue.readyAll.value = new Set();
  m.peers.peers.value = [];
  m.peers.health.value = {};
  m.peers.progress.value = {};
  m.inbox.requests.value = [];
  m.inbox.mine.value = [];
  m.notices.list.value = [];
}
