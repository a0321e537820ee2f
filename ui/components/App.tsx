/// <reference lib="dom" />
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { UiClient } from "../client.ts";
import type { Models } from "../models/app.ts";
import { calibrationBlocker } from "../models/calibration.ts";
import { positionAt } from "../models/session.ts";
import { HelpOverlay } from "./HelpOverlay.tsx";
import { Home } from "./Home.tsx";
import { HostScreen } from "./HostScreen.tsx";
import { Notices } from "./Notices.tsx";
import { PeerScreen } from "./PeerScreen.tsx";
import { createUploadsModel } from "./Uploads.tsx";

const SEEK_STEP_SEC = 5;

/**
 * The whole app: one screen at a time, notices, shortcuts, file picking and dropping. A browser
 * peer's page passes its own `home` (the join form), `banner` (the link to the host) and
 * `overlay` (tap to start audio).
 */
export function App(props: {
  models: Models;
  client: UiClient;
  home?: JSX.Element;
  banner?: string | null;
  overlay?: JSX.Element | null;
}) {
  const { models, client } = props;
  const send = client.send;
  const s = models.session;
  const screen = s.screen.value;
  const [help, setHelp] = useState(false);
  const [uploads] = useState(createUploadsModel);
  const [dropping, setDropping] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const helpOpen = useRef(false);
  helpOpen.current = help;

  const upload = async (files: File[]) => {
    for (const f of files) {
      const id = uploads.nextId.value++;
      const set = (patch: Partial<{ progress: number; error: string }>) =>
        uploads.list.value = uploads.list.value.map((u) => (u.id === id ? { ...u, ...patch } : u));
      uploads.list.value = [...uploads.list.value, { id, name: f.name, progress: 0 }];
      const problem = await client.upload(f, (p) => set({ progress: p }));
      if (problem) {
        set({ error: problem });
        setTimeout(
          () => (uploads.list.value = uploads.list.value.filter((u) => u.id !== id)),
          8000,
        );
      } else uploads.list.value = uploads.list.value.filter((u) => u.id !== id);
    }
  };
  const pickFiles = () => input.current?.click();

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const el = e.target as HTMLElement | null;
      const typing = el &&
        (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
      if (e.key === "Escape") return setHelp(false);
      if (typing) return;
      const role = s.role.value;
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "o") {
        if (role) {
          e.preventDefault();
          pickFiles();
        }
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "?") return setHelp((h) => !h);
      // Behind the (modal) shortcuts list nothing else acts; a held key acts once.
      if (helpOpen.current || !role || e.repeat) return;
      if (e.key === "m" || e.key === "M") {
        return send({ cmd: s.volume.value.muted ? "unmute" : "mute" });
      }
      if (role !== "host") return;
      const t = s.transport.value;
      if (e.key === " " && el?.tagName !== "BUTTON") {
        e.preventDefault();
        send({ cmd: t.state === "playing" ? "pause" : "play" });
      } else if (e.key === "n" || e.key === "N") send({ cmd: "skip" });
      else if (e.key === "k" || e.key === "K") {
        const peers = models.peers.peers.value.length;
        if (calibrationBlocker(models.calibration.state.value, peers) === null) {
          send({ cmd: "calibrate" });
        }
      } else if (
        (e.key === "ArrowLeft" || e.key === "ArrowRight") && t.state !== "stopped" &&
        !el?.closest(".track")
      ) {
        e.preventDefault();
        const step = e.key === "ArrowLeft" ? -SEEK_STEP_SEC : SEEK_STEP_SEC;
        const to = Math.max(
          0,
          Math.min(t.durationSec - 1, positionAt(t, client.hostNowMs()) + step),
        );
        send({ cmd: "seek", seconds: Math.round(to * 10) / 10 });
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  const inSession = screen === "host" || screen === "peer";
  /** What both session screens get. */
  const screenProps = {
    models,
    send,
    hostNowMs: client.hostNowMs,
    pickFiles,
    uploads,
    onHelp: () => setHelp(true),
  };
  return (
    <div
      class={`app${dropping ? " dropping" : ""}`}
      onDragOver={(e) => {
        if (!inSession) return;
        e.preventDefault();
        setDropping(true);
      }}
      onDragLeave={() => setDropping(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDropping(false);
        if (!inSession) return;
        upload([...(e.dataTransfer?.files ?? [])]);
      }}
    >
      <input
        ref={input}
        type="file"
        accept=".mp3,audio/mpeg"
        multiple={screen === "host"}
        hidden
        aria-label={screen === "host" ? "Song files to add" : "Song file to request"}
        onChange={(e) => {
          const files = [...(e.currentTarget.files ?? [])];
          e.currentTarget.value = "";
          upload(files);
        }}
      />
      {props.banner !== undefined
        ? props.banner && <div class="banner offline" role="alert">{props.banner}</div>
        : !client.connected.value && screen !== "connecting" && (
          <div class="banner offline" role="alert">
            Lost the connection to PhaseLock; trying again…
          </div>
        )}
      {screen === "connecting" && (
        <main class="connecting">
          <p class="muted">Connecting to PhaseLock…</p>
        </main>
      )}
      {screen === "home" && (props.home ?? <Home model={models.home} send={send} />)}
      {screen === "host" && <HostScreen {...screenProps} />}
      {screen === "peer" && <PeerScreen {...screenProps} />}
      <Notices model={models.notices} send={send} />
      {dropping && (
        <div class="drop-hint" aria-hidden="true">
          Drop MP3s to {screen === "host" ? "add them" : "request them"}
        </div>
      )}
      {help && <HelpOverlay onClose={() => setHelp(false)} />}
      {props.overlay}
    </div>
  );
}
