import mdnsFactory from "multicast-dns";
import { PROTOCOL_VERSION } from "../session/protocol.ts";

/**
 * DNS-SD over mDNS for `_phaselock._tcp`: the host answers PTR/SRV/TXT/A queries for its
 * session (instance name = session name) and announces itself at start; `browse` asks and
 * collects answers for a while. Ordinary DNS-SD browsers (avahi-browse, dns-sd) list it.
 */
export const SERVICE = "_phaselock._tcp.local";

export interface DiscoveredJam {
  session: string;
  host: string;
  address: string;
  port: number;
  peers: number;
  maxPeers: number;
  protocolVersion: number;
}

// deno-lint-ignore no-explicit-any
type Mdns = any;

function openMdns(): Mdns {
  // Binding to a specific interface stops multicast receive; bind the wildcard address.
  return mdnsFactory({ bind: "0.0.0.0", reuseAddr: true, loopback: true });
}

/** IPv4 addresses a LAN peer could reach us on. */
export function lanAddresses(): string[] {
  return Deno.networkInterfaces()
    .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    .map((i) => i.address);
}

export interface AdvertiseInfo {
  session: string;
  hostName: string;
  port: number;
  peers: () => number;
  maxPeers: number;
}

/** Escapes a DNS label: dots and backslashes in a session name must not split the name. */
function instanceName(session: string): string {
  return `${session.replace(/\\/g, "\\\\").replace(/\./g, "\\.")}.${SERVICE}`;
}

export class Advertiser {
  #mdns: Mdns | null = null;
  readonly #target = `phaselock-${crypto.randomUUID().slice(0, 8)}.local`;

  constructor(readonly info: AdvertiseInfo) {}

  #records() {
    const i = this.info;
    const name = instanceName(i.session);
    const txt = [
      `host=${i.hostName}`,
      `peers=${i.peers()}`,
      `max=${i.maxPeers}`,
      `v=${PROTOCOL_VERSION}`,
    ];
    return [
      { name: SERVICE, type: "PTR", ttl: 120, data: name },
      {
        name,
        type: "SRV",
        ttl: 120,
        data: { port: i.port, target: this.#target, priority: 0, weight: 0 },
      },
      { name, type: "TXT", ttl: 120, data: txt },
      ...lanAddresses().map((a) => ({ name: this.#target, type: "A", ttl: 120, data: a })),
    ];
  }

  start(): void {
    const m = (this.#mdns = openMdns());
    m.on("error", () => {});
    m.on("warning", () => {});
    m.on("query", (q: { questions: { name: string; type: string }[] }) => {
      const all = this.#records();
      const wanted = all.filter((r) =>
        q.questions.some((qq) =>
          qq.name.toLowerCase() === r.name.toLowerCase() &&
          (qq.type === r.type || qq.type === "ANY")
        )
      );
      const servicesQuery = q.questions.some((qq) => qq.name === "_services._dns-sd._udp.local");
      if (servicesQuery) {
        m.respond({
          answers: [{ name: "_services._dns-sd._udp.local", type: "PTR", ttl: 120, data: SERVICE }],
        });
      }
      if (wanted.some((r) => r.type === "PTR")) {
        m.respond({ answers: wanted, additionals: all.filter((r) => r.type !== "PTR") });
      } else if (wanted.length) {
        m.respond({ answers: wanted });
      }
    });
    this.announce();
  }

  /** Sends the records unsolicited (at start, and when the peer count changes). */
  announce(): void {
    const all = this.#records();
    this.#mdns?.respond({ answers: all.slice(0, 1), additionals: all.slice(1) });
  }

  stop(): void {
    // Goodbye: TTL 0 tells browsers the jam is gone.
    const name = instanceName(this.info.session);
    try {
      this.#mdns?.respond({ answers: [{ name: SERVICE, type: "PTR", ttl: 0, data: name }] });
    } catch { /* closing anyway */ }
    this.#mdns?.destroy();
    this.#mdns = null;
  }
}

function unescapeLabel(s: string): string {
  return s.replace(/\\(.)/g, "$1");
}

/** Asks the LAN for jams and collects answers for `timeoutMs`. */
export async function browse(timeoutMs = 1500, signal?: AbortSignal): Promise<DiscoveredJam[]> {
  const m = openMdns();
  m.on("error", () => {});
  m.on("warning", () => {});
  type Rec = { name: string; type: string; data: unknown; ttl?: number };
  const ptr = new Set<string>();
  const srv = new Map<string, { port: number; target: string }>();
  const txt = new Map<string, Record<string, string>>();
  const addr = new Map<string, string>();
  m.on("response", (r: { answers: Rec[]; additionals?: Rec[] }) => {
    for (const rec of [...r.answers, ...(r.additionals ?? [])]) {
      if (rec.type === "PTR" && rec.name === SERVICE) {
        if (rec.ttl === 0) ptr.delete(rec.data as string);
        else ptr.add(rec.data as string);
      } else if (rec.type === "SRV") {
        srv.set(rec.name, rec.data as { port: number; target: string });
      } else if (rec.type === "TXT") {
        const kv: Record<string, string> = {};
        for (const b of rec.data as Uint8Array[]) {
          const s = new TextDecoder().decode(b);
          const eq = s.indexOf("=");
          if (eq > 0) kv[s.slice(0, eq)] = s.slice(eq + 1);
        }
        txt.set(rec.name, kv);
      } else if (rec.type === "A") addr.set(rec.name, rec.data as string);
    }
  });
  const ask = () => m.query({ questions: [{ name: SERVICE, type: "PTR" }] });
  ask();
  const again = setTimeout(ask, Math.min(500, timeoutMs / 3));
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
  clearTimeout(again);
  m.destroy();
  const jams: DiscoveredJam[] = [];
  for (const name of ptr) {
    const s = srv.get(name), t = txt.get(name) ?? {};
    const a = s && addr.get(s.target);
    if (!s || !a) continue;
    jams.push({
      session: unescapeLabel(name.slice(0, -SERVICE.length - 1)),
      host: t.host ?? "",
      address: a,
      port: s.port,
      peers: Number(t.peers ?? 0),
      maxPeers: Number(t.max ?? 0),
      protocolVersion: Number(t.v ?? 0),
    });
  }
  return jams;
}
