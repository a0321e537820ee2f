/// <reference lib="dom" />
/**
 * The browser peer's entry (the page a phone opens from the jam server): the in-page engine is
 * the UI's client, so the same models and components show the peer screens.
 */
import { render } from "preact";
import { useWakeLock } from "./components/useWakeLock.ts";
import { App } from "./components/App.tsx";
import { JoinPage } from "./components/JoinPage.tsx";
import { BrowserPeer } from "./engine/browser_peer.ts";
import { modelsFor } from "./models/app.ts";

const peer = new BrowserPeer();
const { models } = modelsFor(peer);
peer.home();
// Tests and the benchmark read the engine's own view (clock, placement) from here.
(globalThis as { phaselock?: BrowserPeer }).phaselock = peer;

const BANNERS = {
  ok: null,
  offline: "You are offline. The music goes on; PhaseLock rejoins when the network is back.",
  reconnecting: "Lost the connection to the host; reconnecting…",
};

function Page() {
  const inJam = models.session.screen.value === "peer";
  useWakeLock(inJam);
  return (
    <App
      models={models}
      client={peer}
      home={<JoinPage model={models.home} onJoin={(name) => peer.join(name)} />}
      banner={BANNERS[peer.link.value]}
      overlay={inJam && peer.needsTap.value
        ? (
          <button type="button" class="tap-overlay" onClick={() => void peer.tap()}>
            <span class="tap-title">Tap to start audio</span>
            <span class="muted">Your browser needs a tap before this page may play sound.</span>
          </button>
        )
        : null}
    />
  );
}

render(<Page />, document.getElementById("app")!);
