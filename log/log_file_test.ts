import { assertEquals, assertTrue } from "../tests/assert.ts";
import { LogFile, trimStart } from "./log_file.ts";

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  assertTrue(text.endsWith("\n"), "the file ends on a whole entry");
  return text.trimEnd().split("\n").map((l) => JSON.parse(l));
}

Deno.test("entries reach the file every 50 entries and on close, not before", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sub/phaselock.log`;
  const log = new LogFile(path, { flushEvery: 50 });
  for (let i = 0; i < 49; i++) log.write({ n: i });
  await new Promise((r) => setTimeout(r, 50));
  const before = await Deno.stat(path).then(() => true, () => false);
  assertEquals(before, false, "nothing written before the 50th entry");
  log.write({ n: 49 });
  await log.flush();
  assertEquals((await lines(path)).length, 50);
  log.write({ n: 50 });
  await log.close();
  const all = await lines(path);
  assertEquals(all.map((e) => e.n), [...Array(51).keys()]);
  assertTrue(typeof all[0].t === "string");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a small cap: the file never exceeds it and keeps the newest entries", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/phaselock.log`;
  const cap = 4096;
  const log = new LogFile(path, { maxBytes: cap, flushEvery: 7, context: { role: "host" } });
  let largest = 0;
  for (let i = 0; i < 2000; i++) {
    log.write({ n: i, message: "x".repeat(i % 90) });
    if (i % 7 === 6) {
      await log.flush();
      largest = Math.max(largest, (await Deno.stat(path)).size);
    }
  }
  await log.close();
  largest = Math.max(largest, (await Deno.stat(path)).size);
  assertTrue(largest <= cap, `file grew to ${largest} bytes; cap ${cap}`);
  const kept = await lines(path);
  const ns = kept.map((e) => e.n as number);
  assertEquals(ns[ns.length - 1], 1999, "the newest entry is kept");
  assertTrue(ns[0] > 1900, `oldest entries were dropped (first kept ${ns[0]})`);
  for (let i = 1; i < ns.length; i++) assertEquals(ns[i], ns[i - 1] + 1, "kept entries contiguous");
  assertEquals(kept[0].role, "host");
  assertEquals(log.failure, null);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an entry larger than the cap is cut, never the file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/l.log`;
  const log = new LogFile(path, { maxBytes: 1000, flushEvery: 1 });
  log.write({ message: "y".repeat(5000) });
  log.write({ n: 1 });
  await log.close();
  assertTrue((await Deno.stat(path)).size <= 1000);
  const kept = await lines(path);
  assertEquals(kept[kept.length - 1].n, 1);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("two processes sharing a file interleave whole entries", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/shared.log`;
  const module = new URL("./log_file.ts", import.meta.url).href;
  const writer = (who: string, every: number) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { LogFile } from "${module}";
         const log = new LogFile(${JSON.stringify(path)},
           { flushEvery: ${every}, maxBytes: 3000, context: { who: "${who}" } });
         for (let i = 0; i < 300; i++) { log.write({ n: i }); await log.flush(); }
         await log.close();`,
      ],
    }).output();
  const [a, b] = await Promise.all([writer("a", 3), writer("b", 5)]);
  assertTrue(
    a.success && b.success,
    new TextDecoder().decode(a.stderr) + new TextDecoder().decode(b.stderr),
  );
  const kept = await lines(path); // parses every line: none is torn
  assertTrue((await Deno.stat(path)).size <= 3000);
  // Whoever wrote last has its newest entries kept, contiguous: nothing was lost to a race.
  const last = kept[kept.length - 1];
  assertEquals(last.n, 299);
  const theirs = kept.filter((e) => e.who === last.who).map((e) => e.n as number);
  theirs.forEach((n, i) => assertEquals(n, 300 - theirs.length + i));
  // Each writer's entries stay in order.
  for (const who of ["a", "b"]) {
    const ns = kept.filter((e) => e.who === who).map((e) => e.n as number);
    assertTrue(ns.every((n, i) => i === 0 || n > ns[i - 1]), `${who} in order`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("trimStart cuts at a line boundary", () => {
  const b = new TextEncoder().encode("aaaa\nbbbb\ncccc\n");
  assertEquals(trimStart(b, 100), 0);
  assertEquals(trimStart(b, 10), 5);
  assertEquals(trimStart(b, 9), 10);
  assertEquals(trimStart(b, 2), 15);
});
