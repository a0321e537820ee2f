import { assertEquals } from "../tests/assert.ts";
import { Directorship, HEARTBEAT_MS, LISTEN_MS, SILENT_MS } from "./director.ts";
import type { MemberId, SwarmState } from "./protocol.ts";

/** A swarm of Directorships exchanging their messages instantly, stepped by a fake clock. */
class Sim {
  now = 0;
  members = new Map<MemberId, Directorship>();
  /** Members that are present but send nothing (a hung page). */
  mute = new Set<MemberId>();
  #lastBeat = 0;

  add(id: MemberId) {
    const d = new Directorship(id, this.now);
    d.present(this.members.keys());
    for (const o of this.members.values()) o.joined(id);
    this.members.set(id, d);
    return d;
  }
  remove(id: MemberId) {
    this.members.delete(id);
    for (const o of this.members.values()) o.left(id, this.now);
  }
  send(from: MemberId, s: SwarmState | null) {
    if (!s || this.mute.has(from)) return;
    for (const [id, o] of this.members) if (id !== from) o.onState(from, s, this.now);
  }
  run(ms: number) {
    for (const end = this.now + ms; this.now < end; this.now += 50) {
      for (const [id, d] of this.members) this.send(id, d.tick(this.now));
      if (this.now - this.#lastBeat >= HEARTBEAT_MS) {
        this.#lastBeat = this.now;
        for (const [id, d] of this.members) this.send(id, d.heartbeat());
      }
    }
  }
  directors() {
    return [...this.members.values()].map((d) => d.director);
  }
}

Deno.test("the first member directs once it has listened; newcomers adopt it", () => {
  const s = new Sim();
  s.add(1);
  s.run(LISTEN_MS - 100);
  assertEquals(s.directors(), [null]);
  s.run(300);
  assertEquals(s.directors(), [1]);
  s.add(2);
  s.add(3);
  s.run(1000);
  assertEquals(s.directors(), [1, 1, 1]);
});

Deno.test("the director leaves: the lowest remaining id takes over, with the transport", () => {
  const s = new Sim();
  for (const id of [1, 2, 3, 4]) s.add(id);
  s.run(1500);
  const t = { file: "a".repeat(64), playing: true, atMs: 1000, fromSec: 0 };
  s.members.get(1)!.setTransport(t);
  s.run(600);
  s.remove(1);
  s.run(300);
  assertEquals(s.directors(), [2, 2, 2]);
  assertEquals(s.members.get(2)!.transport, t);
});

Deno.test("a director that falls silent is replaced within 3 s", () => {
  const s = new Sim();
  for (const id of [1, 2, 3]) s.add(id);
  s.run(1500);
  s.mute.add(1);
  const start = s.now;
  while (s.members.get(3)!.director !== 2 && s.now - start < 5000) s.run(50);
  assertEquals(s.members.get(3)!.director, 2);
  assertEquals(s.now - start <= SILENT_MS + 1000, true);
});

Deno.test("an elected member that never claims loses its turn to the next", () => {
  const s = new Sim();
  for (const id of [1, 2, 3]) s.add(id);
  s.mute.add(1);
  s.run(4000);
  // 1 thinks it directs but nobody hears it; 2 took its turn.
  assertEquals(s.members.get(2)!.director, 2);
  assertEquals(s.members.get(3)!.director, 2);
});

Deno.test("take control and resign", () => {
  const s = new Sim();
  for (const id of [1, 2, 3]) s.add(id);
  s.run(1500);
  s.send(3, s.members.get(3)!.takeControl(s.now));
  s.run(200);
  assertEquals(s.directors(), [3, 3, 3]);
  // 3 resigns: the lowest other member (1) takes over, and 3 does not grab it back.
  s.send(3, s.members.get(3)!.resign(s.now));
  s.run(1500);
  assertEquals(s.directors(), [1, 1, 1]);
  // The lowest resigns: the next lowest succeeds.
  s.send(1, s.members.get(1)!.resign(s.now));
  s.run(1500);
  assertEquals(s.directors(), [2, 2, 2]);
});

Deno.test("stale claims lose to higher terms; in one term the lower id wins", () => {
  const d = new Directorship(5, 0);
  d.present([1, 2]);
  d.onState(2, { kind: "claim", term: 3 }, 0);
  assertEquals([d.director, d.term], [2, 3]);
  d.onState(1, { kind: "claim", term: 2 }, 0);
  assertEquals([d.director, d.term], [2, 3]);
  d.onState(1, { kind: "claim", term: 3 }, 0);
  assertEquals([d.director, d.term], [1, 3]);
  d.onState(2, { kind: "director", term: 3, transport: d.transport }, 0);
  assertEquals(d.director, 1);
});
