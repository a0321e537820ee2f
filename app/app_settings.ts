/**
 * What the app remembers between runs for its Home screen: the names last used to create and
 * to join a jam. Stored as `app.json` beside `settings.json` in the config folder.
 */
export interface RememberedNames {
  hostName?: string;
  peerName?: string;
  sessionName?: string;
  /** The host address last typed in Join Jam (`IP:port`). */
  address?: string;
  port?: number;
}

const MAX_TEXT = 200;

export class AppSettings {
  constructor(readonly path: string) {}

  async load(): Promise<RememberedNames> {
    try {
      const o = JSON.parse(await Deno.readTextFile(this.path));
      const out: RememberedNames = {};
      for (const k of ["hostName", "peerName", "sessionName", "address"] as const) {
        if (typeof o?.[k] === "string") out[k] = o[k].slice(0, MAX_TEXT);
      }
      if (Number.isInteger(o?.port) && o.port >= 1 && o.port <= 65535) out.port = o.port;
      return out;
    } catch {
      return {}; // first run, or an unreadable file: nothing remembered
    }
  }

  async update(changes: RememberedNames): Promise<void> {
    const all = { ...(await this.load()), ...changes };
    const dir = this.path.replace(/[\\/][^\\/]*$/, "");
    if (dir && dir !== this.path) await Deno.mkdir(dir, { recursive: true });
    const tmp = `${this.path}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(all, null, 2) + "\n");
    await Deno.rename(tmp, this.path);
  }
}
