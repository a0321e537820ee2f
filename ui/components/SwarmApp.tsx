/// <reference lib="dom" />
// Installs the signals integration: a component reading a signal re-renders when it changes.
import "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import type { SwarmActions, SwarmView } from "../../swarm/view.ts";
import { SwarmJoin } from "./SwarmJoin.tsx";
import { NoticeList } from "./NoticeList.tsx";
import { SwarmScreen } from "./SwarmScreen.tsx";

/** What SwarmApp needs of the engine: its actions and its view (a signal, or `{ value }`). */
export type SwarmSource = SwarmActions & { readonly view: { readonly value: SwarmView } };

const BANNERS = {
  ok: null,
  offline: "You are offline. The music goes on; PhaseLock rejoins when the network is back.",
  reconnecting: "Lost the connection to the server; reconnecting… The music goes on.",
};

/**
 * The swarm page from the engine: reads `member.view.value` (a signal: the page re-renders at
 * each new view) and shows {@link SwarmPage}.
 */
export function SwarmApp(props: { member: SwarmSource }) {
  return <SwarmPage view={props.member.view.value} actions={props.member} />;
}

/**
 * The swarm page from a plain view: Join, or the swarm screen; notices, the offline banner,
 * the tap-to-start overlay and the keys (Space: play / stop for the director, M: mute).
 */
export function SwarmPage(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const a = props.actions;
  const inSwarm = v.phase === "joined" || v.phase === "reconnecting";
  const latest = useRef({ v, a });
  latest.current = { v, a };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const { v, a } = latest.current;
      if (v.phase !== "joined" && v.phase !== "reconnecting") return;
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
      const el = e.target as HTMLElement | null;
      const tag = el?.tagName;
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el?.isContentEditable) {
        return;
      }
      if (e.key === "m" || e.key === "M") return a.setVolume(v.volume, !v.muted);
      // Space on a focused button presses that button.
      if (e.key === " " && tag !== "BUTTON" && v.iAmDirector) {
        e.preventDefault();
        if (v.transport.playing || v.waitingFor.length > 0) a.stop();
        else if (v.transport.file) a.play();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  const banner = inSwarm ? BANNERS[v.phase === "reconnecting" ? "reconnecting" : v.link] : null;
  return (
    <div class="app swarm">
      {banner && <div class="banner offline" role="alert">{banner}</div>}
      {inSwarm ? <SwarmScreen view={v} actions={a} /> : <SwarmJoin view={v} actions={a} />}
      <NoticeList notices={v.notices} dismiss={(id) => a.dismiss(id)} />
      {inSwarm && v.needsTap && (
        <button type="button" class="tap-overlay" onClick={() => a.tap()}>
          <span class="tap-title">Tap to start audio</span>
          <span class="muted">Your browser needs a tap before this page may play sound.</span>
        </button>
      )}
    </div>
  );
}
