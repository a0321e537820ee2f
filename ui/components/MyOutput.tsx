import type { Command } from "../../session/commands.ts";
import type { SessionModel } from "../models/session.ts";
import { ChannelSelect } from "./ChannelSelect.tsx";
import { Slider } from "./Slider.tsx";

/**
 * This device's own sound: volume and Mute, speaker delay with the jam's click test to set it
 * by ear, and which channel it plays.
 */
export function MyOutput(props: { session: SessionModel; send: (c: Command) => void }) {
  const v = props.session.volume.value;
  const d = props.session.device.value;
  const audio = props.session.audio.value;
  const clicks = props.session.clicks.value;
  return (
    <section class="my-output card" aria-label="This device">
      <h2>This device</h2>
      {audio && !audio.audible && (
        <p class="warn-text" role="alert">
          {audio.warning ?? "No audio output detected — you won't hear playback"}
        </p>
      )}
      <div class="row">
        <Slider
          label="Volume"
          value={Math.round(v.level * 100)}
          min={0}
          max={100}
          step={1}
          buttonStep={10}
          unit=" %"
          onChange={(x) => props.send({ cmd: "volume", level: x / 100 })}
        />
        <button
          type="button"
          class={v.muted ? "toggle on" : "toggle"}
          aria-pressed={v.muted}
          aria-label="Mute"
          title="Mute (M)"
          onClick={() => props.send({ cmd: v.muted ? "unmute" : "mute" })}
        >
          {v.muted ? "Muted" : "Mute"}
        </button>
      </div>
      <div class="row delay-row">
        <Slider
          label="Speaker delay"
          value={d.speakerDelayMs}
          min={0}
          max={500}
          step={1}
          buttonStep={5}
          unit=" ms"
          onChange={(x) => props.send({ cmd: "delay", ms: x })}
        />
        <button
          type="button"
          class={clicks ? "toggle click-test on" : "toggle click-test"}
          aria-pressed={clicks}
          aria-label="Click test"
          aria-describedby="click-test-hint"
          onClick={() => props.send({ cmd: "clicks", on: !clicks })}
        >
          {clicks ? "Ticking" : "Click test"}
        </button>
      </div>
      <p id="click-test-hint" class="muted small click-hint">
        Every device ticks once a second: move the slider until your ticks land with the others'.
        {clicks ? " Stops by itself after a minute." : ""}
      </p>
      <label class="inline">
        Channel
        <ChannelSelect
          label="Channel"
          value={d.channel}
          onChange={(channel) => props.send({ cmd: "channel", channel })}
        />
      </label>
    </section>
  );
}
