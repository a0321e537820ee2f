/// <reference lib="dom" />
/**
 * The host screen after a calibration, from made-up events: calibration.ts photographs it.
 * A real calibration needs a microphone in a room; the screenshot needs only the UI.
 */
import { render } from "preact";
import type { EngineEvent } from "../../session/commands.ts";
import type { PeerInfo } from "../../session/protocol.ts";
import type { UiClient } from "../../ui/client.ts";
import { App } from "../../ui/components/App.tsx";
import { modelsFor } from "../../ui/models/app.ts";

const peer = (id: number, name: string, speakerDelayMs: number): PeerInfo => ({
  id,
  name,
  clock: "green",
  offsetMs: 0.1,
  rttMs: 0.8,
  audio: { backend: "pulse", device: true },
  track: "ready",
  channel: "stereo",
  speakerDelayMs,
  client: name === "Kim" ? "browser" : "native",
});

const scene: EngineEvent[] = [
  { type: "session", role: "host", session: "Friday Night Vibes", name: "Alex", port: 7420 },
  { type: "audio", backend: "pulse", audible: true },
  { type: "peers", peers: [peer(1, "Sam", 12.3), peer(2, "Kim", 187.1)] },
  {
    type: "calibration",
    state: "done",
    tookMs: 6350,
    devices: [
      ["Alex", 0, 0.93, 0, 0],
      ["Sam", 12.34, 0.88, 0, 12.34],
      ["Kim", 187.06, 0.71, 40, 187.06],
    ].map(([name, latencyMs, confidence, delayBeforeMs, delayMs]) => ({
      name: name as string,
      host: name === "Alex",
      heard: true,
      latencyMs: latencyMs as number,
      confidence: confidence as number,
      delayBeforeMs: delayBeforeMs as number,
      delayMs: delayMs as number,
    })),
  },
];

const listeners = new Set<(e: EngineEvent) => void>();
const client: UiClient = {
  connected: { value: true },
  send: () => {},
  onEvent(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  upload: () => Promise.resolve(null),
  hostNowMs: () => performance.now(),
};
const { models } = modelsFor(client);
for (const e of scene) listeners.forEach((fn) => fn(e));
render(<App models={models} client={client} />, document.getElementById("app")!);
