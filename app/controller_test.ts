import assert from "node:assert/strict";
import type { DiscoveredJam } from "../net/discovery.ts";
import { makeLocalClock } from "../net/local_clock.ts";
import type { EngineEvent } from "../session/commands.ts";
import { SettingsStore } from "../session/device_settings.ts";
import { AppSettings } from "./app_settings.ts";
import { AppController, type AppOptions } from "./controller.ts";
import { freePort } from "../tests/harness/ports.ts";

const jam = (peers: number): DiscoveredJam => ({
  session: "Friday Night Vibes",
  host: "Alex",
  address: "10.0.0.2",
  port: 7420,
  peers,
  maxPeers: 5,
  protocolVersion: 2,
});

/** A controller on a temp folder whose LAN watcher reports `answers`, one every 10 ms. */
async function setup(
  answers: DiscoveredJam[][],
  demoPath?: string,
  more: Partial<AppOptions> = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-ctl-" });
  const events: EngineEvent[] = [];
  const c = new AppController({
    audio: "null",
    settings: new SettingsStore(`${dir}/settings.json`),
    appSettings: new AppSettings(`${dir}/app.json`),
    cacheDir: (sub) => `${dir}/${sub}`,
    demoPath: demoPath ?? `${dir}/none.mp3`,
    bind: "127.0.0.1",
    advertise: false,
    ...more,
  }, {
    clock: () => makeLocalClock(),
    record: (e) => events.push(e),
    watchJams: (onChange, signal) => {
      const timers = answers.map((a, i) => setTimeout(() => onChange(a), 10 * (i + 1)));
      signal.addEventListener("abort", () => timers.forEach(clearTimeout));
    },
  });
  return { c, dir, events };
}

Deno.test("Home shows the LAN's jams as the watcher reports them", async () => {
  const { c, dir, events } = await setup([[], [jam(1)], [jam(2)]]);
  try {
    await c.start();
    const deadline = Date.now() + 5000;
    while (events.filter((e) => e.type === "jams").length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const lists = events.filter((e) => e.type === "jams").map((e) =>
      (e as { jams: { peers: number }[] }).jams.map((j) => j.peers)
    );
    assert.deepEqual(lists, [[], [1], [2]]);
    assert.equal(events[0].type, "home");
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a UI that connects late is shown Home, and commands outside a jam get a sentence", async () => {
  const { c, dir } = await setup([[]]);
  try {
    await c.start();
    const seen: EngineEvent[] = [];
    const off = c.subscribe((e) => seen.push(e));
    assert.equal(seen[0].type, "home");
    await c.run({ cmd: "play" });
    assert.deepEqual(seen.at(-1), { type: "error", message: "Create or join a jam first." });
    await c.run({ cmd: "join", address: "127.0.0.1:1", name: "Sam" });
    // Nothing listens on port 1: back Home with the reason, the name remembered.
    const home = seen.findLast((e) => e.type === "home") as Extract<EngineEvent, { type: "home" }>;
    assert.match(home.message ?? "", /Cannot reach a PhaseLock host at 127\.0\.0\.1:1/);
    assert.equal(home.peerName, "Sam");
    assert.equal(home.address, "127.0.0.1:1");
    assert.equal(c.role, null);
    off();
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adding the demo twice at once queues it once; a jam left and created again starts empty", async () => {
  const demo = new URL("../assets/demo.mp3", import.meta.url).pathname;
  const { c, dir, events } = await setup([[]], demo);
  const port = freePort();
  try {
    await c.start();
    await c.run({ cmd: "create", session: "Twice", name: "Alex", port });
    assert.equal(c.role, "host");
    await Promise.all([c.run({ cmd: "add-demo" }), c.run({ cmd: "add-demo" })]);
    const queue = events.findLast((e) => e.type === "queue") as { tracks: unknown[] };
    assert.equal(queue.tracks.length, 1, "one demo track, not two");
    // Leave while an add is still running: nothing of the old jam may reach the new one.
    const adding = c.run({ cmd: "add-demo" });
    await c.run({ cmd: "leave" });
    await adding;
    const homeAt = events.findLastIndex((e) => e.type === "home");
    assert.deepEqual(events.slice(homeAt + 1).filter((e) => e.type !== "jams"), []);
    await c.run({ cmd: "create", session: "Again", name: "Alex", port: port + 1 });
    const snapshot = c.snapshot().map((e) => e.type);
    assert.ok(snapshot.includes("session"));
    assert.ok(
      !snapshot.includes("queue") || (c.snapshot().find((e) => e.type === "queue") as {
            tracks: unknown[];
          }).tracks.length === 0,
    );
    assert.ok(snapshot.includes("volume"), "the new engine says its volume");
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a jam the app creates admits --max-peers peers and its window gets the join QR code", async () => {
  const { c, dir, events } = await setup([[]], undefined, { maxPeers: 3 });
  const port = freePort();
  try {
    await c.start();
    await c.run({ cmd: "create", session: "Big", name: "Alex", port });
    const s = events.find((e) => e.type === "session") as Extract<EngineEvent, { type: "session" }>;
    assert.equal(s.maxPeers, 3);
    assert.equal(s.joinUrl, `http://127.0.0.1:${port}/`);
    // Version 2 at error correction M: 25 × 25 modules, a finder pattern in the corner.
    assert.equal(s.joinQr?.length, 25);
    assert.ok(s.joinQr?.every((row) => /^[01]{25}$/.test(row)));
    assert.equal(s.joinQr?.[0].slice(0, 8), "11111110");
    // A UI that connects later gets the same.
    assert.deepEqual(c.snapshot().find((e) => e.type === "session"), s);
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});
