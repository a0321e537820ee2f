import { assertEquals, assertRejects } from "../tests/assert.ts";
import { readTags, readTrackFile } from "./track_file.ts";

const fixture = (name: string) => new URL(`../tests/fixtures/${name}`, import.meta.url).pathname;

Deno.test("readTags() reads title, artist, album and the cover picture", async () => {
  const { bytes, fileName } = await readTrackFile(fixture("tagged.mp3"));
  const t = await readTags(bytes, fileName);
  assertEquals([t.title, t.artist, t.album], ["Night Drive", "The Testers", "Loopback Sessions"]);
  assertEquals(t.cover?.mime, "image/png");
  // PNG signature
  assertEquals([...t.cover!.bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
});

Deno.test("readTags() falls back to the file name when there are no tags or they are junk", async () => {
  const { bytes } = await readTrackFile(fixture("noise48k.mp3"));
  const t = await readTags(bytes, "My Song.mp3");
  assertEquals([t.title, t.artist, t.album, t.cover], ["My Song", "", "", null]);
  const junk = await readTags(
    new TextEncoder().encode("ID3\x04\x00\x00\xff\xff\xff\xff junk"),
    "x.mp3",
  );
  assertEquals(junk.title, "x");
});

Deno.test("readTrackFile() refuses missing files and folders with a sentence", async () => {
  await assertRejects(
    () => readTrackFile(fixture("nope.mp3")),
    /Cannot use "nope.mp3": the file does not exist/,
  );
  await assertRejects(() => readTrackFile(fixture("")), /it is not a file/);
});
