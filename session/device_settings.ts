/**
 * Per-device output settings: speaker delay (for Bluetooth speakers and amplifiers that add
 * their own latency) and channel assignment (two laptops become a stereo pair). Remembered per
 * output device in a small JSON file, so the same speaker gets the same delay next time.
 */
import { CHANNEL_MODES, type ChannelMode } from "../audio/player.ts";
import type { EngineEvent } from "./commands.ts";

export { CHANNEL_MODES, type ChannelMode };

export const MAX_SPEAKER_DELAY_MS = 500;

export interface DeviceSettings {
  speakerDelayMs: number;
  channel: ChannelMode;
}

export const DEFAULT_SETTINGS: DeviceSettings = { speakerDelayMs: 0, channel: "stereo" };

/** A sentence if `ms` is not a usable speaker delay, else null. */
export function delayProblem(ms: number): string | null {
  return Number.isFinite(ms) && ms >= 0 && ms <= MAX_SPEAKER_DELAY_MS
    ? null
    : `Speaker delay must be from 0 to ${MAX_SPEAKER_DELAY_MS} ms.`;
}

export function isChannelMode(s: unknown): s is ChannelMode {
  return typeof s === "string" && (CHANNEL_MODES as readonly string[]).includes(s);
}

/** The settings file: `{ "devices": { "pulse:default": { speakerDelayMs, channel } } }`. */
export class SettingsStore implements SettingsMemory {
  constructor(readonly path: string) {}

  async load(device: string): Promise<Partial<DeviceSettings>> {
    try {
      const all = JSON.parse(await Deno.readTextFile(this.path));
      const s = all?.devices?.[device];
      const out: Partial<DeviceSettings> = {};
      if (typeof s?.speakerDelayMs === "number" && !delayProblem(s.speakerDelayMs)) {
        out.speakerDelayMs = s.speakerDelayMs;
      }
      if (isChannelMode(s?.channel)) out.channel = s.channel;
      return out;
    } catch {
      return {}; // no file yet, or unreadable: defaults
    }
  }

  async save(device: string, settings: DeviceSettings): Promise<void> {
    let all: { devices: Record<string, DeviceSettings> } = { devices: {} };
    try {
      const parsed = JSON.parse(await Deno.readTextFile(this.path));
      if (parsed && typeof parsed.devices === "object") all = parsed;
    } catch { /* start afresh */ }
    all.devices[device] = settings;
    const dir = this.path.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== this.path) await Deno.mkdir(dir, { recursive: true });
    const tmp = `${this.path}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(all, null, 2) + "\n");
    await Deno.rename(tmp, this.path);
  }
}

/**
 * This machine's output settings, shared by host and peer engines: applies them to the audio
 * output, remembers them for the device, and reports every change as a `device` event.
 */
/** Where a device's settings are remembered: a file natively, localStorage in a browser. */
export interface SettingsMemory {
  load(device: string): Promise<Partial<DeviceSettings>>;
  save(device: string, settings: DeviceSettings): Promise<void>;
}

/** What the controls drive: a native output or a web page's. */
export interface SettingsTarget {
  setSpeakerDelay(ms: number): void;
  setChannel(channel: ChannelMode): void;
}

export class DeviceControls {
  #settings: DeviceSettings = { ...DEFAULT_SETTINGS };
  #device = "";
  onChange: (s: DeviceSettings) => void = () => {};

  constructor(
    readonly output: SettingsTarget,
    readonly store: SettingsMemory | null,
    readonly emit: (e: EngineEvent) => void,
  ) {}

  get settings(): DeviceSettings {
    return { ...this.#settings };
  }

  /** Remembered settings for `device`, overridden by any given on the command line. */
  async init(device: string, overrides: Partial<DeviceSettings>): Promise<void> {
    this.#device = device;
    const remembered = (await this.store?.load(device)) ?? {};
    const s = { ...DEFAULT_SETTINGS, ...remembered, ...overrides };
    this.#apply(s);
    if (Object.keys(overrides).length) await this.#save();
    this.#report();
  }

  async setDelay(ms: number): Promise<void> {
    const bad = delayProblem(ms);
    if (bad) return this.emit({ type: "error", message: bad });
    this.#apply({ ...this.#settings, speakerDelayMs: ms });
    await this.#save();
    this.#report();
  }

  async setChannel(channel: ChannelMode): Promise<void> {
    this.#apply({ ...this.#settings, channel });
    await this.#save();
    this.#report();
  }

  #apply(s: DeviceSettings) {
    this.#settings = s;
    this.output.setSpeakerDelay(s.speakerDelayMs);
    this.output.setChannel(s.channel);
    this.onChange(this.settings);
  }

  async #save() {
    try {
      await this.store?.save(this.#device, this.#settings);
    } catch (e) {
      this.emit({
        type: "notice",
        level: "warn",
        message: `Could not remember the speaker settings: ${(e as Error).message}`,
      });
    }
  }

  #report() {
    this.emit({ type: "device", device: this.#device, ...this.#settings });
  }
}
