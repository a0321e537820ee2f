/**
 * The app: the control server with the UI on 127.0.0.1, the app controller behind it, and the
 * window showing it — or, with `--no-window`, the address for any browser on this machine.
 * Closing the window, `quit` from the UI, or a signal ends the session cleanly (peers told).
 */
import type { LogFile } from "../log/log_file.ts";
import type { EngineEvent } from "../session/commands.ts";
import { newToken, serveControl } from "../server/control.ts";
import { AppSettings } from "./app_settings.ts";
import { AppController, type AppOptions } from "./controller.ts";
import {
  backendOf,
  cacheDir,
  clockOf,
  configDir,
  deviceOf,
  EXIT,
  maxPeersOf,
  portOf,
  settingsStore,
  simOutputLatencyOf,
} from "./options.ts";
import { ensureBundle, filePath, loadPeerAssets, loadUiAssets } from "./ui_assets.ts";
import { openWindow, setWindowBusy, windowProblem, WindowUnavailableError } from "./window.ts";

/** The built-in demo track, made by `assets/make_demo.ts`. */
export const DEMO_TRACK = new URL("../assets/demo.mp3", import.meta.url);

export async function runApp(flags: Record<string, unknown>, logFile: LogFile): Promise<number> {
  const say = (s: string) => {
    console.error(`[phaselock] ${s}`);
    logFile.write({ type: "log", message: s });
  };
  // Every flag is checked before anything starts: a bad one costs one line, not a build.
  const options: AppOptions = {
    port: flags.port === undefined ? undefined : portOf(flags),
    bind: flags.bind as string | undefined,
    audio: backendOf(flags),
    wavPath: flags["wav-out"] as string | undefined,
    simOutputLatencyMs: simOutputLatencyOf(flags),
    device: deviceOf(flags),
    settings: settingsStore(flags),
    appSettings: new AppSettings(`${configDir(flags)}/app.json`),
    cacheDir: (sub) => cacheDir(flags, sub),
    demoPath: filePath(DEMO_TRACK),
    discover: !flags["no-discover"],
    advertise: !flags["no-advertise"],
    maxPeers: maxPeersOf(flags),
    mic: flags.mic as string | undefined,
  };
  const withWindow = !flags["no-window"];
  if (withWindow) {
    const problem = windowProblem();
    if (problem) {
      console.error(problem);
      return EXIT.failure;
    }
  }
  await ensureBundle();
  const [assets, peerAssets] = await Promise.all([loadUiAssets(), loadPeerAssets()]);
  options.peerPage = () => Promise.resolve(peerAssets);

  const controller = new AppController(options, {
    clock: () => clockOf(flags),
    record: (e) => logFile.write(e),
  });

  const activity = windowActivity();
  controller.subscribe((e) => activity.event(e));
  let quit!: () => void;
  const quitting = new Promise<void>((r) => quit = r);
  const control = serveControl(controller, {
    token: newToken(),
    uploadDir: cacheDir(flags, "uploads"),
    assets: () => Promise.resolve(assets),
    onQuit: () => quit(),
    onActivity: () => activity.touch(),
  });
  await controller.start();

  Deno.addSignalListener("SIGINT", quit);
  Deno.addSignalListener("SIGTERM", quit);
  // With a window the address (it holds the token) is printed only when asked: a launcher may
  // send stdout to a system log. `--print-url` lets a browser here be a second view (and tests
  // drive the real window's app through it).
  if (!withWindow || flags["print-url"]) {
    console.log(JSON.stringify({ type: "ui", url: control.url }));
  }
  let window = null;
  if (withWindow) {
    try {
      window = await openWindow({ url: control.url, title: "PhaseLock", width: 1280, height: 800 });
      window.closed.then(quit, quit);
      say("PhaseLock is open.");
    } catch (e) {
      console.error(e instanceof WindowUnavailableError ? e.message : (e as Error).message);
      await controller.close();
      await control.stop();
      return EXIT.failure;
    }
  } else {
    // Not the address itself: the log may be readable by others, the token must not be.
    say(
      "PhaseLock is running without a window: open the address printed above in a browser on this machine.",
    );
  }

  await quitting;
  Deno.removeSignalListener("SIGINT", quit);
  Deno.removeSignalListener("SIGTERM", quit);
  activity.stop();
  await controller.close();
  window?.close();
  await control.stop();
  say("PhaseLock closed.");
  return EXIT.ok;
}

/**
 * Whether the window shows something moving: playback (the progress bar), or a person who
 * used it in the last few seconds. The window is pumped fast only then (see setWindowBusy).
 */
function windowActivity() {
  const LINGER_MS = 3000;
  let playing = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const update = () => {
    clearTimeout(timer);
    setWindowBusy(true);
    timer = setTimeout(() => setWindowBusy(playing), LINGER_MS);
  };
  return {
    touch: update,
    event(e: EngineEvent) {
      if (e.type === "playing") playing = true;
      else if (e.type === "paused" || e.type === "stopped" || e.type === "home") playing = false;
      else return;
      update();
    },
    stop: () => clearTimeout(timer),
  };
}
