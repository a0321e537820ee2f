import { assertEquals, assertTrue } from "../tests/assert.ts";
import { qrRows } from "./join_qr.ts";

Deno.test("qrRows draws the join URL as square rows of modules with three finder patterns", () => {
  const rows = qrRows("http://192.168.1.20:7420/");
  const n = rows.length;
  assertEquals(n, 25, "version 2 at error correction M");
  assertTrue(rows.every((r) => r.length === n && /^[01]+$/.test(r)));
  // Finder patterns: a 7-module ring with a 3 × 3 centre in three corners, a light separator.
  const finder = ["1111111", "1000001", "1011101", "1011101", "1011101", "1000001", "1111111"];
  for (let i = 0; i < 7; i++) {
    assertEquals(rows[i].slice(0, 7), finder[i]);
    assertEquals(rows[i].slice(n - 7), finder[i]);
    assertEquals(rows[n - 7 + i].slice(0, 7), finder[i]);
  }
  assertEquals(rows[7].slice(0, 8), "00000000");
  // A longer address (IPv6) needs a bigger code, still square.
  const v6 = qrRows("http://[fd12:3456:789a:1::20]:7420/");
  assertTrue(v6.length > n && v6.every((r) => r.length === v6.length));
});
