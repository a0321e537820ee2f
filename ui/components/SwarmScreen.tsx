import type { SwarmActions, SwarmView } from "../../swarm/view.ts";
import { StatusDot } from "./StatusDot.tsx";
import { SwarmFiles } from "./SwarmFiles.tsx";
import { memberCount, SwarmMembers } from "./SwarmMembers.tsx";
import { SwarmNowPlaying } from "./SwarmNowPlaying.tsx";
import { SwarmOutput } from "./SwarmOutput.tsx";

const LINK = {
  ok: { color: "green", word: "online" },
  reconnecting: { color: "yellow", word: "reconnecting" },
  offline: { color: "red", word: "offline" },
} as const;

/** Who I am, the server link and this device's clock (dots with words), how many we are. */
function Facts(props: { view: SwarmView }) {
  const v = props.view;
  const link = LINK[v.link];
  const c = v.clock;
  return (
    <p class="swarm-facts muted">
      {v.me && <span>you are {v.me.name}</span>}
      <span aria-label="Server">
        <StatusDot color={link.color} label={`server ${link.word}`} />
      </span>
      <span aria-label="Clock">
        {c
          ? (
            <StatusDot
              color={c.locked ? "green" : "yellow"}
              label={`${c.locked ? "clock locked" : "syncing clock"} · rtt ${
                Math.round(c.rttMs)
              } ms`}
            />
          )
          : <StatusDot color="red" label="no clock yet" />}
      </span>
      <span>{memberCount(v.members.length)}</span>
    </p>
  );
}

/** A member's swarm: who is here, what plays, the files, and this device's sound. */
export function SwarmScreen(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const a = props.actions;
  return (
    <div class="screen swarm-screen">
      <header class="top swarm-top">
        <h1 class="session-name">{v.swarmName}</h1>
        <button type="button" class="secondary" onClick={() => a.leave()}>Leave</button>
        <Facts view={v} />
      </header>
      <p class="swarm-status" role="status">{v.status}</p>
      <div class="columns two">
        <div class="col centre">
          <SwarmNowPlaying view={v} actions={a} />
          <SwarmFiles view={v} actions={a} />
          <SwarmOutput view={v} actions={a} />
        </div>
        <div class="col right">
          <SwarmMembers members={v.members} fileSelected={v.transport.file !== null} />
          <p class="muted small swarm-keys">
            Keys: <kbd>Space</kbd> play / stop (director) · <kbd>M</kbd> mute
          </p>
        </div>
      </div>
    </div>
  );
}
