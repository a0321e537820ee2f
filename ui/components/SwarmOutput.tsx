import type { SwarmActions, SwarmView } from "../../swarm/view.ts";
import { Slider } from "./Slider.tsx";

/**
 * This device's own sound in a swarm: volume and Mute, speaker delay and the click test to set
 * it by ear. The same look as MyOutput (which reads a jam's session model).
 */
export function SwarmOutput(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const a = props.actions;
  return (
    <section class="my-output card" aria-label="This device">
      <h2>This device</h2>
      <div class="row">
        <Slider
          label="Volume"
          value={Math.round(v.volume * 100)}
          min={0}
          max={100}
          step={1}
          buttonStep={10}
          unit=" %"
          onChange={(x) => a.setVolume(x / 100, v.muted)}
        />
        <button
          type="button"
          class={v.muted ? "toggle on" : "toggle"}
          aria-pressed={v.muted}
          aria-label="Mute"
          title="Mute (M)"
          onClick={() => a.setVolume(v.volume, !v.muted)}
        >
          {v.muted ? "Muted" : "Mute"}
        </button>
      </div>
      <div class="row delay-row">
        <Slider
          label="Speaker delay"
          value={v.speakerDelayMs}
          min={0}
          max={500}
          step={1}
          buttonStep={5}
          unit=" ms"
          onChange={(x) => a.setDelay(x)}
        />
        <button
          type="button"
          class={v.clicks ? "toggle click-test on" : "toggle click-test"}
          aria-pressed={v.clicks}
          aria-label="Click test"
          aria-describedby="swarm-click-hint"
          onClick={() => a.setClicks(!v.clicks)}
        >
          {v.clicks ? "Ticking" : "Click test"}
        </button>
      </div>
      <p id="swarm-click-hint" class="muted small click-hint">
        Every device ticks once a second: move the slider until your ticks land with the others'.
      </p>
    </section>
  );
}
