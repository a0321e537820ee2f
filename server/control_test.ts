import assert from "node:assert/strict";
import { safeFileName, sameToken } from "./control.ts";

Deno.test("an uploaded file's name cannot leave its folder or exceed a file system's limit", () => {
  assert.equal(safeFileName("song (1).mp3"), "song (1).mp3");
  assert.equal(safeFileName("../../evil.mp3"), "evil.mp3");
  assert.equal(safeFileName("C:\\Users\\a\\b.mp3"), "b.mp3");
  for (const bad of ["", ".", "..", "a/..", "  ", "\u0000"]) {
    assert.equal(safeFileName(bad), "upload.mp3", JSON.stringify(bad));
  }
  const long = safeFileName("é".repeat(300) + ".mp3");
  assert.ok(new TextEncoder().encode(long).length <= 200);
  assert.ok(/^é+$/.test(long), "cut on a character boundary");
});

Deno.test("tokens match only when equal", () => {
  assert.ok(sameToken("abc", "abc"));
  assert.ok(!sameToken("abc", "abd"));
  assert.ok(!sameToken("abc", "ab"));
});
