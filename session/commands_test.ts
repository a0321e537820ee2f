import { assertEquals, assertTrue } from "../tests/assert.ts";
import { parseCommand } from "./commands.ts";

Deno.test("parseCommand() reads words and JSON alike", () => {
  assertEquals(parseCommand("play"), { cmd: "play" });
  assertEquals(parseCommand("  SEEK 42.5 "), { cmd: "seek", seconds: 42.5 });
  assertEquals(parseCommand('{"cmd":"seek","seconds":42}'), { cmd: "seek", seconds: 42 });
  assertEquals(parseCommand("add /music/My Song.mp3"), { cmd: "add", path: "/music/My Song.mp3" });
  assertEquals(parseCommand('add "/music/a b.mp3"'), { cmd: "add", path: "/music/a b.mp3" });
  assertEquals(parseCommand('{"cmd":"volume","level":0.25}'), { cmd: "volume", level: 0.25 });
});

Deno.test("parseCommand() answers bad input with a sentence", () => {
  const err = (s: string) => {
    const r = parseCommand(s);
    assertTrue("error" in r, s);
    return r.error;
  };
  assertTrue(/Unknown command "dance"/.test(err("dance")));
  assertTrue(/volume needs a level from 0 to 1/.test(err("volume 2")));
  assertTrue(/seek needs a position/.test(err("seek -1")));
  assertTrue(/seek needs a position/.test(err("seek")));
  assertTrue(/not valid JSON/.test(err("{nope")));
  assertTrue(/"cmd" field/.test(err('{"command":"play"}')));
  assertTrue(/longer than/.test(err("add " + "x".repeat(9000))));
});
