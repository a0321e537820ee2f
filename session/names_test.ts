import { assertEquals } from "../tests/assert.ts";
import { cleanName, dedupeName } from "./names.ts";

Deno.test("dedupeName() appends the first free number", () => {
  assertEquals(dedupeName("Sam", []), "Sam");
  assertEquals(dedupeName("Sam", ["Alex", "Sam"]), "Sam (2)");
  assertEquals(dedupeName("Sam", ["Sam", "Sam (2)"]), "Sam (3)");
  assertEquals(dedupeName("Sam", ["Sam", "Sam (3)"]), "Sam (2)");
});

Deno.test("dedupeName() treats names differing only in case as taken", () => {
  assertEquals(dedupeName("sam", ["Sam"]), "sam (2)");
});

Deno.test("cleanName() strips control characters, collapses spaces and caps length", () => {
  assertEquals(cleanName("  Sam\u0000\n  the\tDJ "), "Sam the DJ");
  assertEquals(cleanName("\u0007\u0008"), "");
  assertEquals([...cleanName("x".repeat(100))].length, 40);
  assertEquals([...cleanName("🎵".repeat(50))].length, 40);
});
