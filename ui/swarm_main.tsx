/// <reference lib="dom" />
/**
 * The swarm page's entry (`phaselock serve --headless` serves it as /swarm.html): the in-page
 * swarm member is the engine, SwarmApp shows its view.
 */
import { render } from "preact";
import { useWakeLock } from "./components/useWakeLock.ts";
import { SwarmMember } from "../swarm/member.ts";
import { SwarmApp } from "./components/SwarmApp.tsx";

const member = new SwarmMember();
// Tests read the engine from here.
(globalThis as { phaselock?: SwarmMember }).phaselock = member;

function Page() {
  const phase = member.view.value.phase;
  useWakeLock(phase === "joined" || phase === "reconnecting");
  return <SwarmApp member={member} />;
}

render(<Page />, document.getElementById("app")!);
