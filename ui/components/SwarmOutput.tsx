import type { SwarmActions, SwarmView } from "../../swarm/view.ts";
import { OutputControls } from "./OutputControls.tsx";

/** This device's own sound in a swarm: the same controls as a jam's (MyOutput). */
export function SwarmOutput(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const a = props.actions;
  return (
    <section class="my-output card" aria-label="This device">
      <h2>This device</h2>
      <OutputControls
        volume={v.volume}
        muted={v.muted}
        speakerDelayMs={v.speakerDelayMs}
        clicks={v.clicks}
        setVolume={(level) => a.setVolume(level, v.muted)}
        setMuted={(muted) => a.setVolume(v.volume, muted)}
        setDelay={(ms) => a.setDelay(ms)}
        setClicks={(on) => a.setClicks(on)}
        hintId="swarm-click-hint"
      />
    </section>
  );
}
