/**
 * The link emulator: a user-space relay for UDP and TCP on one port number that forwards
 * everything to a target through a {@link LinkDirection} model in each direction. A WAN user is
 * emulated by joining the relay's HOST:PORT instead of the host's: control, file transfer
 * (TCP) and clock pings (UDP, same port number) all cross the emulated link.
 *
 *   deno run -A net/link_relay.ts --listen 127.0.0.1:7500 --to 10.0.0.1:7420 \
 *     --delay-ms 40 --jitter-ms 10 --loss 0.02 [--stream-loss 0] [--bandwidth-kbps 0] \
 *     [--seed 1] [--cut-after-bytes N [--cuts K]]
 */
import { LinkDirection, type LinkParams, PERFECT_LINK, seededRandom } from "./link_model.ts";

export interface RelayOptions {
  listen: { hostname: string; port: number };
  target: { hostname: string; port: number };
  link: LinkParams;
  seed?: number;
  /** Close a TCP connection once it has carried this many bytes towards the client. */
  cutAfterBytes?: number;
  /** How many connections to cut that way (default: every one). */
  cuts?: number;
}

export interface RelayStats {
  up: LinkDirection["stats"];
  down: LinkDirection["stats"];
  tcpConnections: number;
  tcpCut: number;
  udpClients: number;
}

/** Runs `fn` at (or just after) `atMs` on the monotonic clock, in order of `atMs`. */
class DeliveryQueue {
  #items: { atMs: number; seq: number; fn: () => void }[] = [];
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  at(atMs: number, fn: () => void) {
    this.#items.push({ atMs, seq: this.#seq++, fn });
    this.#items.sort((a, b) => a.atMs - b.atMs || a.seq - b.seq);
    this.#arm();
  }

  #arm() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const next = this.#items[0];
    if (!next) return;
    this.#timer = setTimeout(() => this.#run(), Math.max(0, next.atMs - performance.now()));
  }

  #run() {
    this.#timer = null;
    const now = performance.now();
    while (this.#items.length && this.#items[0].atMs <= now + 0.5) this.#items.shift()!.fn();
    this.#arm();
  }

  clear() {
    this.#items = [];
    this.#arm();
  }
}

const MAX_UDP_CLIENTS = 64;
/** Unsent stream data per connection and direction before the relay stops reading (a window). */
const STREAM_WINDOW_BYTES = 4 << 20;

export class LinkRelay {
  readonly up: LinkDirection;
  readonly down: LinkDirection;
  #queue = new DeliveryQueue();
  #udp: Deno.DatagramConn | null = null;
  #udpClients = new Map<string, { conn: Deno.DatagramConn; lastMs: number }>();
  #tcp: Deno.Listener | null = null;
  #conns = new Set<Deno.Conn>();
  #tcpConnections = 0;
  #tcpCut = 0;
  #closed = false;

  constructor(readonly opts: RelayOptions) {
    const seed = opts.seed ?? 1;
    this.up = new LinkDirection(opts.link, seededRandom(seed));
    this.down = new LinkDirection(opts.link, seededRandom(seed + 0x9e3779b9));
  }

  get stats(): RelayStats {
    return {
      up: { ...this.up.stats },
      down: { ...this.down.stats },
      tcpConnections: this.#tcpConnections,
      tcpCut: this.#tcpCut,
      udpClients: this.#udpClients.size,
    };
  }

  /** Binds both sockets (throws a sentence if the port is taken) and starts relaying. */
  start(): void {
    const { hostname, port } = this.opts.listen;
    try {
      this.#tcp = Deno.listen({ hostname, port, transport: "tcp" });
      this.#udp = Deno.listenDatagram({ hostname, port, transport: "udp" });
    } catch (e) {
      this.#tcp?.close();
      throw new Error(
        `The link emulator cannot listen on ${hostname}:${port}: ${(e as Error).message}`,
      );
    }
    void this.#acceptTcp(this.#tcp);
    void this.#serveUdp(this.#udp);
  }

  async #serveUdp(sock: Deno.DatagramConn) {
    const target = { ...this.opts.target, transport: "udp" as const };
    try {
      for await (const [data, from] of sock) {
        const addr = from as Deno.NetAddr;
        const key = `${addr.hostname}:${addr.port}`;
        let client = this.#udpClients.get(key);
        if (!client) {
          if (this.#udpClients.size >= MAX_UDP_CLIENTS) this.#evictIdleUdp();
          const conn = Deno.listenDatagram({ hostname: "0.0.0.0", port: 0, transport: "udp" });
          client = { conn, lastMs: 0 };
          this.#udpClients.set(key, client);
          void this.#pumpUdpReplies(conn, sock, addr);
        }
        client.lastMs = performance.now();
        const at = this.up.datagram(performance.now(), data.byteLength);
        const c = client.conn;
        if (at !== null) this.#queue.at(at, () => c.send(data, target).catch(() => {}));
      }
    } catch {
      // socket closed
    }
  }

  #evictIdleUdp() {
    const oldest = [...this.#udpClients.entries()].sort((a, b) => a[1].lastMs - b[1].lastMs)[0];
    if (!oldest) return;
    oldest[1].conn.close();
    this.#udpClients.delete(oldest[0]);
  }

  async #pumpUdpReplies(conn: Deno.DatagramConn, sock: Deno.DatagramConn, client: Deno.NetAddr) {
    try {
      for await (const [data] of conn) {
        const at = this.down.datagram(performance.now(), data.byteLength);
        if (at !== null) this.#queue.at(at, () => sock.send(data, client).catch(() => {}));
      }
    } catch {
      // closed
    }
  }

  async #acceptTcp(listener: Deno.Listener) {
    try {
      for await (const client of listener) void this.#relayTcp(client);
    } catch {
      // listener closed
    }
  }

  async #relayTcp(client: Deno.Conn) {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ ...this.opts.target, transport: "tcp" });
    } catch {
      client.close();
      return;
    }
    this.#tcpConnections++;
    this.#conns.add(client);
    this.#conns.add(server);
    const cutLimit = this.opts.cutAfterBytes;
    const mayCut = cutLimit !== undefined && (this.opts.cuts ?? Infinity) > this.#tcpCut;
    let closed = false;
    const closeBoth = () => {
      if (closed) return;
      closed = true;
      for (const c of [client, server]) {
        this.#conns.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      }
    };
    let downBytes = 0;
    const pipe = async (from: Deno.Conn, to: Deno.Conn, dir: LinkDirection, isDown: boolean) => {
      let lastAt = 0;
      let pending = 0;
      let chain = Promise.resolve();
      const buf = new Uint8Array(64 * 1024);
      try {
        while (!closed) {
          while (pending > STREAM_WINDOW_BYTES && !closed) {
            await new Promise((r) => setTimeout(r, 5));
          }
          let n = await from.read(buf);
          if (n === null) break;
          let cut = false;
          if (isDown && mayCut && downBytes + n >= cutLimit!) {
            n = cutLimit! - downBytes;
            cut = true;
            this.#tcpCut++;
          }
          if (isDown) downBytes += n;
          const data = buf.slice(0, n);
          pending += n;
          lastAt = dir.chunk(performance.now(), n, lastAt);
          this.#queue.at(lastAt, () => {
            chain = chain.then(async () => {
              pending -= data.byteLength;
              if (closed) return;
              let off = 0;
              while (off < data.byteLength) off += await to.write(data.subarray(off));
            }).catch(closeBoth);
          });
          if (cut) break;
        }
      } catch {
        // reset by either side
      }
      // Let in-flight data land before the close travels the link too.
      this.#queue.at(lastAt + 0.001, () => void chain.then(closeBoth));
    };
    void pipe(client, server, this.up, false);
    void pipe(server, client, this.down, true);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.clear();
    try {
      this.#tcp?.close();
    } catch { /* closed */ }
    try {
      this.#udp?.close();
    } catch { /* closed */ }
    for (const c of this.#udpClients.values()) c.conn.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }
}

export function parseHostPort(s: string, what: string): { hostname: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new RangeError(`${what} must look like HOST:PORT, not "${s}".`);
  }
  return { hostname: m[1], port };
}

if (import.meta.main) {
  const args = Deno.args;
  const get = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const num = (name: string, dflt: number) => {
    const v = get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new RangeError(`--${name} must be a number, not "${v}".`);
    return n;
  };
  try {
    const listen = get("listen"), to = get("to");
    if (!listen || !to) {
      throw new RangeError(
        "Usage: link_relay.ts --listen HOST:PORT --to HOST:PORT [--delay-ms N …]",
      );
    }
    const relay = new LinkRelay({
      listen: parseHostPort(listen, "--listen"),
      target: parseHostPort(to, "--to"),
      link: {
        ...PERFECT_LINK,
        delayMs: num("delay-ms", 0),
        jitterMs: num("jitter-ms", 0),
        loss: num("loss", 0),
        streamLoss: num("stream-loss", 0),
        bandwidthKbps: num("bandwidth-kbps", 0),
      },
      seed: num("seed", 1),
      cutAfterBytes: get("cut-after-bytes") ? num("cut-after-bytes", 0) : undefined,
      cuts: get("cuts") ? num("cuts", 1) : undefined,
    });
    relay.start();
    console.log(JSON.stringify({ type: "relay", listen, to, link: relay.opts.link }));
    const stop = () => {
      console.log(JSON.stringify({ type: "relay-stats", ...relay.stats }));
      relay.close();
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGTERM", stop);
    Deno.addSignalListener("SIGINT", stop);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
}
