/// <reference lib="dom" />
/**
 * The swarm page's entry (`phaselock serve --headless` serves it as /swarm.html): the in-page
 * swarm member is the engine, SwarmApp shows its view.
 */
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { SwarmMember } from "../swarm/member.ts";
import { SwarmApp } from "./components/SwarmApp.tsx";

const member = new SwarmMember();
// Tests read the engine from here.
(globalThis as { phaselock?: SwarmMember }).phaselock = member;

/** Keeps the screen on while in a swarm, where the browser allows it (secure pages only). */
function useWakeLock(active: boolean) {
  useEffect(() => {
    const wl = (navigator as Navigator & {
      wakeLock?: { request(t: "screen"): Promise<{ release(): Promise<void> }> };
    }).wakeLock;
    if (!active || !wl) return;
    let lock: { release(): Promise<void> } | null = null;
    const take = () => {
      if (document.visibilityState === "visible") {
        wl.request("screen").then((l) => lock = l, () => {});
      }
    };
    take();
    document.addEventListener("visibilitychange", take);
    return () => {
      document.removeEventListener("visibilitychange", take);
      void lock?.release().catch(() => {});
    };
  }, [active]);
}

function Page() {
  const phase = member.view.value.phase;
  useWakeLock(phase === "joined" || phase === "reconnecting");
  return <SwarmApp member={member} />;
}

render(<Page />, document.getElementById("app")!);
