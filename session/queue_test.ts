import { assertEquals } from "../tests/assert.ts";
import { fetchOrder, MAX_QUEUE_TRACKS, TrackQueue } from "./queue.ts";

function queueOf(...ids: string[]) {
  const q = new TrackQueue((id) => id.toUpperCase());
  for (const id of ids) q.add(id);
  return q;
}

Deno.test("TrackQueue: add, advance, wanted and next", () => {
  const q = queueOf();
  assertEquals([q.current, q.currentId, q.wanted()], [-1, undefined, []]);
  q.add("a");
  q.add("b");
  q.add("c");
  assertEquals([q.current, q.currentId, q.nextId, q.wanted()], [0, "a", "b", ["a", "b"]]);
  assertEquals(q.advance(), true);
  assertEquals(q.advance(), true);
  assertEquals([q.currentId, q.nextId, q.wanted()], ["c", undefined, ["c"]]);
  assertEquals(q.advance(), false);
  assertEquals(q.currentId, "c");
});

Deno.test("TrackQueue: move keeps the current track current", () => {
  const q = queueOf("a", "b", "c", "d");
  q.advance(); // b
  assertEquals(q.move(4, 1), null);
  assertEquals([q.ids, q.currentId, q.nextId], [["d", "a", "b", "c"], "b", "c"]);
  assertEquals(q.move(3, 4), null); // the current track itself
  assertEquals([q.ids, q.current, q.nextId], [["d", "a", "c", "b"], 3, undefined]);
  assertEquals(q.move(1, 5), "There is no track 5: the queue has 4 (1–4).");
  assertEquals(q.move(0, 1), "There is no track 0: the queue has 4 (1–4).");
  assertEquals(queueOf().move(1, 1), "The queue is empty.");
});

Deno.test("TrackQueue: remove before, at and after the current track", () => {
  const q = queueOf("a", "b", "c", "d");
  q.advance();
  q.advance(); // c
  assertEquals(q.remove(1), { id: "a" });
  assertEquals([q.ids, q.currentId], [["b", "c", "d"], "c"]);
  assertEquals(q.remove(3), { id: "d" });
  assertEquals([q.currentId, q.nextId], ["c", undefined]);
  assertEquals(q.remove(2), { id: "c" }); // current, last: the new last becomes current
  assertEquals([q.ids, q.currentId], [["b"], "b"]);
  assertEquals(q.remove(2), { error: "There is no track 2: the queue has 1 (1–1)." });
  assertEquals(q.remove(1), { id: "b" });
  assertEquals([q.current, q.wanted()], [-1, []]);
  q.add("e");
  assertEquals(q.currentId, "e");
});

Deno.test("TrackQueue: full at the cap; describe names title and position", () => {
  const q = queueOf(...Array.from({ length: MAX_QUEUE_TRACKS }, (_, i) => `t${i}`));
  assertEquals(q.full, true);
  assertEquals(q.describe("t2"), '"T2" (3)');
});

Deno.test("fetchOrder: current first, then what follows, then what was played", () => {
  assertEquals(fetchOrder(["a", "b", "c", "d"], 2), ["c", "d", "a", "b"]);
  assertEquals(fetchOrder(["a", "b"], -1), ["a", "b"]);
});
