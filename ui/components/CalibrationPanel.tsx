import type { CalibratedDevice, Command } from "../../session/commands.ts";
import {
  calibrationBlocker,
  calibrationProgress,
  type CalibrationState,
  doneSentence,
  runningLine,
} from "../models/calibration.ts";
import { useEffect, useState } from "preact/hooks";
import { percent } from "./format.ts";
import { useFrame } from "./useFrame.ts";

/**
 * The host's Calibrate button and what the last calibration found: every device plays a chirp,
 * the host's microphone hears them, and speaker delays are set so that all of them arrive there
 * together. Host only: it needs the host's microphone and sets every device's delay.
 */
export function CalibrationPanel(props: {
  state: CalibrationState;
  peers: number;
  hostNowMs: () => number;
  send: (c: Command) => void;
}) {
  const c = props.state;
  // Between the click and the engine's `running`, a second click would only be refused. An
  // engine that answers with an error instead never says `running`: the button comes back.
  const [asked, setAsked] = useState(false);
  useEffect(() => setAsked(false), [c]);
  useEffect(() => {
    if (!asked) return;
    const t = setTimeout(() => setAsked(false), 3000);
    return () => clearTimeout(t);
  }, [asked]);
  const blocker = calibrationBlocker(c, props.peers);
  return (
    <section class="calibration card" aria-label="Calibration">
      <h2>
        Calibration <span class="muted small">by the host's microphone</span>
      </h2>
      <div class="calibrate-row">
        <button
          type="button"
          class="calibrate"
          disabled={blocker !== null || asked}
          title={blocker ?? "Calibrate every speaker delay (K)"}
          aria-describedby="calibrate-hint"
          onClick={() => {
            setAsked(true);
            props.send({ cmd: "calibrate" });
          }}
        >
          Calibrate
        </button>
        <p id="calibrate-hint" class="muted small">
          Put the host's microphone where people listen.
          {blocker && c.state !== "running" && <span class="calibrate-why">{blocker}</span>}
        </p>
      </div>
      {c.state === "running" && <Running state={c} hostNowMs={props.hostNowMs} />}
      {c.state === "done" && (
        <>
          <p class="calibration-result" role="status">
            {doneSentence(c.devices)}{" "}
            <span class="muted small">Took {(c.tookMs / 1000).toFixed(1)} s.</span>
          </p>
          <CalibrationTable devices={c.devices} />
        </>
      )}
      {c.state === "refused" && (
        <>
          <p class="calibration-refused" role="alert">{c.message}</p>
          {c.devices.length > 0 && <CalibrationTable devices={c.devices} />}
        </>
      )}
    </section>
  );
}

/** The devices being listened to and a bar derived from the clock each frame. */
function Running(props: {
  state: Extract<CalibrationState, { state: "running" }>;
  hostNowMs: () => number;
}) {
  useFrame(true);
  const c = props.state;
  const fraction = calibrationProgress(c, props.hostNowMs());
  const line = runningLine(c.devices, c.expectedMs);
  return (
    <div class="calibration-running" role="status">
      <p>{line}</p>
      <div
        class="calibration-bar"
        role="progressbar"
        aria-label="Calibration progress"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(fraction * 100)}
      >
        <div class="calibration-fill" style={{ width: `${fraction * 100}%` }} />
      </div>
    </div>
  );
}

const oneDecimal = (x: number) => x.toFixed(1);

/** Per device: how late the microphone heard it, how clearly, and the delay set. */
function CalibrationTable(props: { devices: CalibratedDevice[] }) {
  return (
    <table class="calibration-table">
      <thead>
        <tr>
          <th scope="col">Device</th>
          <th scope="col" title="How much later than the quickest device the microphone hears it">
            Latency
          </th>
          <th scope="col" title="How clearly its chirp stood out of the recording">Confidence</th>
          <th scope="col">Delay set</th>
        </tr>
      </thead>
      <tbody>
        {props.devices.map((d) => (
          <tr key={d.name}>
            <th scope="row">
              <span class="calibration-name">{d.name}</span>
              {d.host && <span class="tag">host</span>}
            </th>
            <td class={d.heard ? "" : "not-heard"}>
              {d.heard && d.latencyMs !== null ? `${oneDecimal(d.latencyMs)} ms` : "not heard"}
            </td>
            <td>{percent(d.confidence)}</td>
            <td>
              {d.delayMs === d.delayBeforeMs
                ? (
                  <>
                    {oneDecimal(d.delayMs)} ms <span class="muted">kept</span>
                  </>
                )
                : `${oneDecimal(d.delayBeforeMs)} → ${oneDecimal(d.delayMs)} ms`}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
