import { assertEquals, assertThrows, assertTrue } from "../tests/assert.ts";
import { PERFECT_LINK } from "./link_model.ts";
import { LinkRelay, parseHostPort } from "./link_relay.ts";

/** A UDP and TCP echo server on one loopback port. */
function echoServer() {
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (tcp.addr as Deno.NetAddr).port;
  const udp = Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const c of tcp) {
      conns.push(c);
      c.readable.pipeTo(c.writable).catch(() => {});
    }
  })().catch(() => {});
  (async () => {
    for await (const [d, from] of udp) await udp.send(d, from);
  })().catch(() => {});
  return {
    port,
    close() {
      tcp.close();
      udp.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

function relayTo(port: number, link: Partial<typeof PERFECT_LINK>, extra = {}) {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const listenPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const relay = new LinkRelay({
    listen: { hostname: "127.0.0.1", port: listenPort },
    target: { hostname: "127.0.0.1", port },
    link: { ...PERFECT_LINK, ...link },
    ...extra,
  });
  relay.start();
  return { relay, port: listenPort };
}

Deno.test({
  name: "UDP through the relay takes the emulated round trip and loses what the link loses",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const echo = echoServer();
    const { relay, port } = relayTo(echo.port, { delayMs: 15, jitterMs: 5, loss: 0.2 });
    const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      const sent = new Map<number, number>();
      const rtts: number[] = [];
      const recv = (async () => {
        for await (const [d] of sock) {
          const seq = new DataView(d.buffer).getUint32(0);
          rtts.push(performance.now() - sent.get(seq)!);
        }
      })().catch(() => {});
      for (let i = 0; i < 100; i++) {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setUint32(0, i);
        sent.set(i, performance.now());
        await sock.send(b, { hostname: "127.0.0.1", port, transport: "udp" });
        await new Promise((r) => setTimeout(r, 3));
      }
      await new Promise((r) => setTimeout(r, 200));
      sock.close();
      await recv;
      // Two crossings at 20 % loss each: about 64 of 100 make it back.
      assertTrue(rtts.length > 45 && rtts.length < 82, `${rtts.length} replies`);
      assertTrue(
        Math.min(...rtts) >= 20,
        `no reply faster than 2 × (15 − 5) ms: ${Math.min(...rtts)}`,
      );
      assertTrue(Math.max(...rtts) < 60, `none much slower than 2 × 20 ms: ${Math.max(...rtts)}`);
      const st = relay.stats;
      assertEquals(st.up.packets, 100);
      assertTrue(st.up.lost > 5 && st.down.lost > 3, JSON.stringify(st));
    } finally {
      relay.close();
      echo.close();
    }
  },
});

async function readN(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) break;
    got += r;
  }
  return out.subarray(0, got);
}

Deno.test({
  name: "TCP through the relay is intact, ordered and limited to the emulated bandwidth",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const echo = echoServer();
    // 2 Mbit/s each way: 100 kB takes 0.4 s to cross, echoed back in parallel.
    const { relay, port } = relayTo(echo.port, { delayMs: 5, jitterMs: 2, bandwidthKbps: 2000 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const data = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);
      const t0 = performance.now();
      const writing = conn.write(data).then(async function rest(n): Promise<void> {
        if (n < data.length) await rest(n + await conn.write(data.subarray(n)));
      });
      const back = await readN(conn, data.length);
      await writing;
      const ms = performance.now() - t0;
      assertEquals(back.length, data.length);
      assertTrue(back.every((v, i) => v === data[i]), "bytes arrive intact and in order");
      assertTrue(ms >= 390 && ms < 1500, `100 kB at 2 Mbit/s took ${ms.toFixed(0)} ms`);
    } finally {
      conn.close();
      relay.close();
      echo.close();
    }
  },
});

Deno.test({
  name: "the relay cuts a TCP connection after the configured bytes, only as often as asked",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const echo = echoServer();
    const { relay, port } = relayTo(echo.port, {}, { cutAfterBytes: 3000, cuts: 1 });
    try {
      const send = async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(new Uint8Array(5000).fill(1)).catch(() => 0);
        const got = await readN(conn, 5000);
        conn.close();
        return got.length;
      };
      assertEquals(await send(), 3000, "first connection cut after 3000 bytes");
      assertEquals(await send(), 5000, "second connection untouched");
      assertEquals(relay.stats.tcpCut, 1);
    } finally {
      relay.close();
      echo.close();
    }
  },
});

Deno.test("relay addresses are checked", () => {
  assertEquals(parseHostPort("10.0.0.1:7420", "x"), { hostname: "10.0.0.1", port: 7420 });
  assertEquals(parseHostPort("[::1]:80", "x"), { hostname: "::1", port: 80 });
  assertThrows(() => parseHostPort("10.0.0.1", "--to"), /--to must look like HOST:PORT/);
  assertThrows(() => parseHostPort("h:70000", "--to"), /HOST:PORT/);
});
