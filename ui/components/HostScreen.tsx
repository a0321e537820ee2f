import { computed } from "@preact/signals";
import { useMemo } from "preact/hooks";
import type { Command } from "../../session/commands.ts";
import type { Models } from "../models/app.ts";
import { CalibrationPanel } from "./CalibrationPanel.tsx";
import { JoinInfo } from "./JoinInfo.tsx";
import { MyOutput } from "./MyOutput.tsx";
import { NowPlaying } from "./NowPlaying.tsx";
import { Peers } from "./Peers.tsx";
import { Queue } from "./Queue.tsx";
import { Requests } from "./Requests.tsx";
import { SessionHeader } from "./SessionHeader.tsx";
import { SyncHealth } from "./SyncHealth.tsx";
import { Uploads, type UploadsModel } from "./Uploads.tsx";

/**
 * The host's session: peers and how to join left, now playing, this device and calibration
 * centre, queue right, requests below.
 */
export function HostScreen(props: {
  models: Models;
  send: (c: Command) => void;
  hostNowMs: () => number;
  pickFiles: () => void;
  uploads: UploadsModel;
  onHelp: () => void;
}) {
  const { session: s, queue: q, peers, inbox } = props.models;
  const ready = useMemo(() =>
    computed(() => {
      const cur = q.currentTrack.value;
      if (!cur) return { can: false, why: "" };
      const t = s.transport.value;
      if (t.state === "playing") return { can: true, why: "" };
      if (q.readyAll.value.has(cur.id)) return { can: true, why: "" };
      const waiting = peers.peers.value.filter((p) => p.track !== "ready").map((p) => p.name);
      return waiting.length
        ? { can: false, why: `Waiting for ${waiting.join(", ")} to get "${cur.title}".` }
        : { can: true, why: "" };
    }), []);
  const t = s.transport.value;
  const n = peers.peers.value.length, max = s.maxPeers.value;
  return (
    <div class="screen host-screen">
      <SessionHeader
        session={s.session.value}
        leaveLabel="End Jam"
        send={props.send}
        onHelp={props.onHelp}
      >
        Hosted by {s.myName.value} · <span aria-label="Address">{s.address.value}</span> ·{" "}
        {max ? `${n} of ${max} peers` : `${n} ${n === 1 ? "peer" : "peers"}`}
      </SessionHeader>
      <div class="columns">
        <div class="col left">
          <Peers
            peers={peers.peers.value}
            progress={peers.progress.value}
            currentId={q.currentTrack.value?.id ?? null}
            nextId={q.nextTrack.value?.id ?? null}
            send={props.send}
          />
          {s.joinUrl.value && (
            <JoinInfo url={s.joinUrl.value} qr={s.joinQr.value} peers={n} maxPeers={max} />
          )}
          <SyncHealth health={peers.health.value} />
        </div>
        <div class="col centre">
          <NowPlaying
            transport={t}
            track={q.currentTrack.value}
            jamUrl={s.jamUrl.value}
            hostNowMs={props.hostNowMs}
            send={props.send}
            canPlay={ready.value.can}
            waitingFor={ready.value.why}
          />
          <MyOutput session={s} send={props.send} />
          <CalibrationPanel
            state={props.models.calibration.state.value}
            peers={n}
            hostNowMs={props.hostNowMs}
            send={props.send}
          />
        </div>
        <div class="col right">
          <Queue
            tracks={q.tracks.value}
            current={q.current.value}
            playingId={t.state === "playing" ? t.trackId : null}
            send={props.send}
          >
            <div class="queue-actions">
              <button
                type="button"
                class="primary"
                onClick={props.pickFiles}
                title="Add Song (Ctrl+O)"
              >
                Add Song
              </button>
              <button
                type="button"
                class="secondary"
                onClick={() => props.send({ cmd: "add-demo" })}
              >
                Add demo track
              </button>
            </div>
            <Uploads model={props.uploads} />
          </Queue>
        </div>
      </div>
      <Requests requests={inbox.requests.value} send={props.send} />
    </div>
  );
}
