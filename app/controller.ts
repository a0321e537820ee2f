/**
 * The app around the engine: Home (remembered names, jams discovered on the LAN), creating and
 * joining jams, leaving them, and the way back Home when a host goes away. The window's UI and
 * `--no-window` browsers drive it with the same `Command` union headless mode reads, and get
 * the same `EngineEvent`s; a UI that connects late gets the current state replayed.
 */
import type { SinkBackend } from "../audio/sink.ts";
import { type DiscoveredJam, watchJams } from "../net/discovery.ts";
import type { LocalClock } from "../net/local_clock.ts";
import type { PeerPageAssets } from "../server/http.ts";
import { type Command, type EngineEvent, parseAddress } from "../session/commands.ts";
import type { DeviceSettings, SettingsStore } from "../session/device_settings.ts";
import { HostEngine } from "../session/host.ts";
import { PeerEngine } from "../session/peer.ts";
import type { AppSettings, RememberedNames } from "./app_settings.ts";
import { qrRows } from "./join_qr.ts";

export interface AppOptions {
  /** Port offered in the Create Jam form (`--port`); else the last one used, else 7420. */
  port?: number;
  audio: SinkBackend | "auto";
  wavPath?: string;
  /** Testing aid: a latency this device's output has and does not report (ms). */
  simOutputLatencyMs?: number;
  device?: Partial<DeviceSettings>;
  settings: SettingsStore;
  appSettings: AppSettings;
  /** Folder for received tracks (`tracks`), accepted requests (`requests`), UI uploads. */
  cacheDir: (sub: "tracks" | "requests" | "uploads") => string;
  /** The built-in demo track. */
  demoPath: string;
  /** Address the jam server binds (default all interfaces). */
  bind?: string;
  /** Look for jams on the LAN while Home is shown (default true). */
  discover?: boolean;
  /** Announce created jams on the LAN by mDNS (default true). */
  advertise?: boolean;
  /** How many peers a created jam admits (`--max-peers`; default 5). */
  maxPeers?: number;
  /** The page browsers open to join a created jam (served at `/` on its port). */
  peerPage?: () => Promise<PeerPageAssets>;
  /** The microphone a created jam calibrates with (`--mic`; default: the default input). */
  mic?: string;
}

export interface AppComponents {
  clock: () => LocalClock;
  /** Every event also goes here (the log, stdout in `--no-window` mode). */
  record?: (e: EngineEvent) => void;
  /** LAN discovery; injected so tests can run without multicast. */
  watchJams?: (onChange: (jams: DiscoveredJam[]) => void, signal: AbortSignal) => void;
}

type Session =
  | { role: "host"; engine: HostEngine }
  | { role: "peer"; engine: PeerEngine };

/** Event types that describe state: the last of each is replayed to a UI that connects. */
const STATE_TYPES = new Set<EngineEvent["type"]>([
  "home",
  "jams",
  "session",
  "audio",
  "device",
  "volume",
  "queue",
  "peers",
  "inbox",
  "clock",
  "clicks",
  "next",
  // The last one is enough for the common case: the current track ready everywhere.
  "track-ready-all",
]);
/** The transport's state is whichever of these came last. */
const TRANSPORT_TYPES = new Set<EngineEvent["type"]>(["playing", "paused", "stopped"]);

export class AppController {
  #session: Session | null = null;
  #busy = false;
  /** Sessions are started and ended one at a time, in order. */
  #serial: Promise<unknown> = Promise.resolve();
  /** Bumped when a session ends: its engine's late events are dropped, not shown in the next. */
  #generation = 0;
  readonly #listeners = new Set<(e: EngineEvent) => void>();
  readonly #state = new Map<string, EngineEvent>();
  /** Recent health samples (a minute's worth), so the sync panel is full on reconnect. */
  #health: EngineEvent[] = [];
  #discovery: AbortController | null = null;
  #closed = false;

  constructor(readonly opts: AppOptions, readonly parts: AppComponents) {}

  /** Shows Home and starts looking for jams. */
  async start(): Promise<void> {
    await this.#home();
  }

  /** Ends any session (peers are told) and stops discovery. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#discovery?.abort();
    await this.#exclusive(() => this.#endSession());
  }

  /** Runs `fn` after every session change queued before it. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => {});
    return run;
  }

  /** The emit an engine gets: its events count only while it is this app's session. */
  #emitFor(generation: number): (e: EngineEvent) => void {
    return (e) => {
      if (generation === this.#generation) this.emit(e);
    };
  }

  /** Remembers names for the next Home; a settings folder that cannot be written costs nothing. */
  async #remember(names: RememberedNames) {
    await this.opts.appSettings.update(names).catch(() => {});
  }

  get role(): "host" | "peer" | null {
    return this.#session?.role ?? null;
  }

  /** Subscribes to events; the current state is replayed first. Returns the unsubscribe. */
  subscribe(fn: (e: EngineEvent) => void): () => void {
    for (const e of this.snapshot()) fn(e);
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The events that rebuild the current screen, oldest first. */
  snapshot(): EngineEvent[] {
    return [...this.#state.values(), ...this.#health];
  }

  /** The host clock now (the session's), for the UI's progress bars. */
  hostNowMs(): number {
    const s = this.#session;
    if (s?.role === "peer") return s.engine.hostNowMs();
    if (s?.role === "host") return s.engine.clock.now();
    return performance.timeOrigin + performance.now();
  }

  emit = (e: EngineEvent): void => {
    if (e.type === "session" && e.role === "host" && e.port && !e.jamUrl) {
      // The window reaches its own jam server (covers) on loopback unless it is bound elsewhere.
      const bind = this.opts.bind && this.opts.bind !== "0.0.0.0" ? this.opts.bind : "127.0.0.1";
      e = { ...e, jamUrl: `http://${bind.includes(":") ? `[${bind}]` : bind}:${e.port}` };
    }
    if (e.type === "session" && e.joinUrl && !e.joinQr) e = { ...e, joinQr: qrRows(e.joinUrl) };
    if (e.type === "health") {
      this.#health.push(e);
      if (this.#health.length > 60) this.#health.shift();
    } else if (STATE_TYPES.has(e.type)) this.#state.set(e.type, e);
    else if (TRANSPORT_TYPES.has(e.type)) this.#state.set("transport", e);
    this.parts.record?.(e);
    for (const fn of this.#listeners) fn(e);
  };

  #error(message: string) {
    this.emit({ type: "error", message });
  }

  /** Runs one command from a UI. `quit` is the caller's: it closes the app. */
  async run(c: Command): Promise<void> {
    if (c.cmd === "create" || c.cmd === "join") {
      if (this.#busy) return; // a second click while the first one starts the session
      this.#busy = true;
      try {
        await this.#exclusive(async () => {
          if (this.#closed) return;
          if (this.#session) {
            return this.#error("Leave the current session before starting another.");
          }
          await (c.cmd === "create" ? this.#create(c) : this.#join(c));
        });
      } finally {
        this.#busy = false;
      }
      return;
    }
    if (c.cmd === "leave") {
      return await this.#exclusive(async () => {
        if (!this.#session) return;
        await this.#endSession();
        await this.#home();
      });
    }
    const s = this.#session;
    if (!s) return this.#error("Create or join a jam first.");
    if (c.cmd === "add-demo") {
      if (s.role !== "host") return this.#error("Only the host adds songs; use Request Song.");
      await s.engine.add(this.opts.demoPath, { fileName: "PhaseLock Demo.mp3" });
      return;
    }
    if (s.role === "host") await s.engine.run(c);
    else s.engine.run(c);
  }

  /** A file the UI uploaded: the host queues it, a peer offers it to the host. */
  async addUploaded(path: string, fileName: string): Promise<string | null> {
    const s = this.#session;
    if (!s) return "Create or join a jam first.";
    if (s.role === "host") return await s.engine.add(path, { fileName });
    s.engine.run({ cmd: "request", path });
    return null;
  }

  /**
   * What starting either kind of session begins with: Home stops looking, the names are
   * remembered, the old session's state goes. Returns the emit for the new engine.
   */
  async #begin(names: RememberedNames): Promise<(e: EngineEvent) => void> {
    this.#discovery?.abort();
    await this.#remember(names);
    this.#clearSessionState();
    return this.#emitFor(++this.#generation);
  }

  /** This device's output options, the same for host and peer. */
  get #output() {
    const { audio, wavPath, simOutputLatencyMs, device, settings } = this.opts;
    return { audio, wavPath, simOutputLatencyMs, device, settings };
  }

  async #create(c: Extract<Command, { cmd: "create" }>) {
    const emit = await this.#begin({ hostName: c.name, sessionName: c.session, port: c.port });
    const engine = new HostEngine(
      {
        session: c.session,
        name: c.name,
        port: c.port,
        hostname: this.opts.bind,
        advertise: this.opts.advertise,
        maxPeers: this.opts.maxPeers,
        peerPage: this.opts.peerPage,
        requestDir: this.opts.cacheDir("requests"),
        mic: this.opts.mic,
        ...this.#output,
      },
      this.parts.clock(),
      emit,
    );
    try {
      await engine.start();
    } catch (e) {
      this.#generation++;
      await engine.stop().catch(() => {});
      const message = e instanceof Deno.errors.AddrInUse
        ? `Port ${c.port} is already in use. Choose another port.`
        : `Cannot create the jam: ${(e as Error).message}`;
      await this.#home(message);
      return;
    }
    this.#session = { role: "host", engine };
  }

  async #join(c: Extract<Command, { cmd: "join" }>) {
    const to = parseAddress(c.address)!;
    const emit = await this.#begin({ peerName: c.name, address: c.address });
    const engine = new PeerEngine(
      {
        hostname: to.hostname,
        port: to.port,
        name: c.name,
        cacheDir: this.opts.cacheDir("tracks"),
        ...this.#output,
      },
      this.parts.clock(),
      emit,
    );
    try {
      await engine.start();
    } catch (e) {
      this.#generation++;
      const why = await Promise.race([engine.ended, Promise.resolve(null)]);
      await engine.stop().catch(() => {});
      const message = why === "refused"
        ? `The host refused to let you join: ${(e as Error).message}`
        : (e as Error).message;
      await this.#home(message);
      return;
    }
    const session: Session = { role: "peer", engine };
    this.#session = session;
    engine.ended.then((why) =>
      this.#exclusive(async () => {
        if (this.#session !== session || why === "quit") return;
        await this.#endSession();
        if (!this.#closed) await this.#home("Host disconnected — session ended");
      })
    );
  }

  async #endSession() {
    const s = this.#session;
    this.#session = null;
    if (!s) return;
    this.#generation++;
    if (s.role === "peer") s.engine.run({ cmd: "quit" });
    await s.engine.stop().catch((e) => this.#error(`While leaving: ${(e as Error).message}`));
  }

  #clearSessionState() {
    for (const k of [...this.#state.keys()]) if (k !== "jams") this.#state.delete(k);
    this.#health = [];
  }

  async #home(message?: string) {
    if (this.#session) return; // a session started meanwhile: it is what the UI shows
    this.#clearSessionState();
    // The list from before the session is stale (the jam just left may be gone): start afresh.
    if (this.#state.has("jams")) this.emit({ type: "jams", jams: [] });
    const s = await this.opts.appSettings.load();
    this.emit({
      type: "home",
      hostName: s.hostName ?? "",
      peerName: s.peerName ?? "",
      sessionName: s.sessionName ?? "",
      address: s.address ?? "",
      port: this.opts.port ?? s.port ?? 7420,
      ...(message ? { message } : {}),
    });
    if (this.opts.discover !== false && !this.#closed) this.#discover();
  }

  /** Watches the LAN for jams while no session runs; emits the list when it changes. */
  #discover() {
    this.#discovery?.abort();
    const ac = new AbortController();
    this.#discovery = ac;
    try {
      (this.parts.watchJams ?? watchJams)((jams) => {
        if (!ac.signal.aborted) this.emit({ type: "jams", jams });
      }, ac.signal);
    } catch { /* no multicast here: Home offers the address field */ }
  }
}
