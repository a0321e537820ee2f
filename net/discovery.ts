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

type Rec = { name: string; type: string; data: unknown; ttl?: number };

/** What mDNS answers have said about jams so far; turns them into the list of jams. */
class JamRecords {
  /** Instance names, with when they were last announced (ms). */
  readonly ptr = new Map<string, number>();
  readonly srv = new Map<string, { port: number; target: string }>();
  readonly txt = new Map<string, Record<string, string>>();
  readonly addr = new Map<string, string>();

  take(r: { answers: Rec[]; additionals?: Rec[] }, nowMs: number): void {
    for (const rec of [...r.answers, ...(r.additionals ?? [])]) {
      if (rec.type === "PTR" && rec.name === SERVICE) {
        if (rec.ttl === 0) this.ptr.delete(rec.data as string);
        else this.ptr.set(rec.data as string, nowMs);
      } else if (rec.type === "SRV") {
        this.srv.set(rec.name, rec.data as { port: number; target: string });
      } else if (rec.type === "TXT") {
        const kv: Record<string, string> = {};
        for (const b of rec.data as Uint8Array[]) {
          const s = new TextDecoder().decode(b);
          const eq = s.indexOf("=");
          if (eq > 0) kv[s.slice(0, eq)] = s.slice(eq + 1);
        }
        this.txt.set(rec.name, kv);
      } else if (rec.type === "A") this.addr.set(rec.name, rec.data as string);
    }
  }

  /** Forgets jams not announced since `sinceMs` (a host that vanished without a goodbye). */
  expire(sinceMs: number): void {
    for (const [name, seenMs] of this.ptr) if (seenMs < sinceMs) this.ptr.delete(name);
  }

  jams(): DiscoveredJam[] {
    const jams: DiscoveredJam[] = [];
    for (const name of this.ptr.keys()) {
      const s = this.srv.get(name), t = this.txt.get(name) ?? {};
      const a = s && this.addr.get(s.target);
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
}

function ask(m: Mdns) {
  m.query({ questions: [{ name: SERVICE, type: "PTR" }] });
}

/** Asks the LAN for jams and collects answers for `timeoutMs`. */
export async function browse(timeoutMs = 1500, signal?: AbortSignal): Promise<DiscoveredJam[]> {
  const m = openMdns();
  m.on("error", () => {});
  m.on("warning", () => {});
  const records = new JamRecords();
  m.on("response", (r: { answers: Rec[]; additionals?: Rec[] }) => records.take(r, 0));
  ask(m);
  const again = setTimeout(() => ask(m), Math.min(500, timeoutMs / 3));
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
  clearTimeout(again);
  m.destroy();
  return records.jams();
}

/** How often a watcher asks; a jam not heard of for three rounds is dropped. */
const WATCH_QUERY_MS = 4000;

/**
 * Keeps listening for jams until `signal` aborts and calls `onChange` with the whole list each
 * time it changes: a host's announcement (a peer joined, the jam ended) shows at once, not at
 * the next round of asking.
 */
export function watchJams(onChange: (jams: DiscoveredJam[]) => void, signal: AbortSignal): void {
  const m = openMdns();
  m.on("error", () => {});
  m.on("warning", () => {});
  const records = new JamRecords();
  let last = "";
  const check = () => {
    const jams = records.jams();
    const key = JSON.stringify(jams);
    if (key !== last) {
      last = key;
      onChange(jams);
    }
  };
  m.on("response", (r: { answers: Rec[]; additionals?: Rec[] }) => {
    records.take(r, performance.now());
    check();
  });
  ask(m);
  const timers = [
    setTimeout(() => ask(m), 500),
    setInterval(() => {
      records.expire(performance.now() - 3 * WATCH_QUERY_MS);
      check();
      ask(m);
    }, WATCH_QUERY_MS),
  ];
  signal.addEventListener("abort", () => {
    for (const t of timers) clearTimeout(t);
    m.destroy();
  }, { once: true });
}
