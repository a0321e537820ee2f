import type { Command } from "../../session/commands.ts";
import type { SessionModel } from "../models/session.ts";
import { ChannelSelect } from "./ChannelSelect.tsx";
import { OutputControls } from "./OutputControls.tsx";

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
      <OutputControls
        volume={v.level}
        muted={v.muted}
        speakerDelayMs={d.speakerDelayMs}
        clicks={clicks}
        setVolume={(level) => props.send({ cmd: "volume", level })}
        setMuted={(muted) => props.send({ cmd: muted ? "mute" : "unmute" })}
        setDelay={(ms) => props.send({ cmd: "delay", ms })}
        setClicks={(on) => props.send({ cmd: "clicks", on })}
        hintId="click-test-hint"
        clicksNote="Stops by itself after a minute."
      />
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
