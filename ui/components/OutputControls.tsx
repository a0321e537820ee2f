import { Slider } from "./Slider.tsx";

/** What {@link OutputControls} shows and what it asks for. */
export interface OutputControlsProps {
  /** 0..1. */
  volume: number;
  muted: boolean;
  speakerDelayMs: number;
  clicks: boolean;
  setVolume(level: number): void;
  setMuted(muted: boolean): void;
  setDelay(ms: number): void;
  setClicks(on: boolean): void;
  /** The id of the click test's hint (unique on the page). */
  hintId: string;
  /** Said after the hint while the click test runs. */
  clicksNote?: string;
}

/**
 * A device's own sound, for a jam and for a swarm alike: volume and Mute, speaker delay, and the
 * click test to set the delay by ear.
 */
export function OutputControls(p: OutputControlsProps) {
  return (
    <>
      <div class="row">
        <Slider
          label="Volume"
          value={Math.round(p.volume * 100)}
          min={0}
          max={100}
          step={1}
          buttonStep={10}
          unit=" %"
          onChange={(x) => p.setVolume(x / 100)}
        />
        <button
          type="button"
          class={p.muted ? "toggle on" : "toggle"}
          aria-pressed={p.muted}
          aria-label="Mute"
          title="Mute (M)"
          onClick={() => p.setMuted(!p.muted)}
        >
          {p.muted ? "Muted" : "Mute"}
        </button>
      </div>
      <div class="row delay-row">
        <Slider
          label="Speaker delay"
          value={p.speakerDelayMs}
          min={0}
          max={500}
          step={1}
          buttonStep={5}
          unit=" ms"
          onChange={(x) => p.setDelay(x)}
        />
        <button
          type="button"
          class={p.clicks ? "toggle click-test on" : "toggle click-test"}
          aria-pressed={p.clicks}
          aria-label="Click test"
          aria-describedby={p.hintId}
          onClick={() => p.setClicks(!p.clicks)}
        >
          {p.clicks ? "Ticking" : "Click test"}
        </button>
      </div>
      <p id={p.hintId} class="muted small click-hint">
        Every device ticks once a second: move the slider until your ticks land with the others'.
        {p.clicks && p.clicksNote ? ` ${p.clicksNote}` : ""}
      </p>
    </>
  );
}
