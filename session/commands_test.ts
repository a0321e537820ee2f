import { assertEquals, assertTrue } from "../tests/assert.ts";
import { LOCAL_COMMANDS, parseCommand } from "./commands.ts";

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

Deno.test("parseCommand() reads speaker delay and channel assignments", () => {
  assertEquals(parseCommand("delay 120"), { cmd: "delay", ms: 120 });
  assertEquals(parseCommand('{"cmd":"delay","ms":35.5}'), { cmd: "delay", ms: 35.5 });
  assertEquals(parseCommand("channel LEFT"), { cmd: "channel", channel: "left" });
  assertEquals(parseCommand("channel Sam (2) right"), {
    cmd: "channel",
    channel: "right",
    peer: "Sam (2)",
  });
  assertEquals(parseCommand('{"cmd":"channel","channel":"mono","peer":"Alex"}'), {
    cmd: "channel",
    channel: "mono",
    peer: "Alex",
  });
  for (const bad of ["delay 501", "delay -1", "delay", "channel", "channel Sam up"]) {
    const r = parseCommand(bad);
    assertTrue("error" in r && /delay needs|channel needs/.test(r.error), bad);
  }
});

Deno.test("parseCommand() reads queue, request and inbox commands", () => {
  assertEquals(parseCommand("queue"), { cmd: "queue" });
  assertEquals(parseCommand("move 3 1"), { cmd: "move", from: 3, to: 1 });
  assertEquals(parseCommand('{"cmd":"move","from":2,"to":4}'), { cmd: "move", from: 2, to: 4 });
  assertEquals(parseCommand("remove 2"), { cmd: "remove", position: 2 });
  assertEquals(parseCommand('{"cmd":"remove","position":1}'), { cmd: "remove", position: 1 });
  assertEquals(parseCommand('request "/home/me/a b.mp3"'), {
    cmd: "request",
    path: "/home/me/a b.mp3",
  });
  assertEquals(parseCommand("inbox"), { cmd: "inbox" });
  assertEquals(parseCommand("accept 7"), { cmd: "accept", id: 7 });
  assertEquals(parseCommand('{"cmd":"reject","id":2}'), { cmd: "reject", id: 2 });
  assertEquals(parseCommand("retry Sam (2)"), { cmd: "retry", peer: "Sam (2)" });
  assertEquals(parseCommand('{"cmd":"skip-peer","peer":"Sam"}'), { cmd: "skip-peer", peer: "Sam" });
  const bad: [string, RegExp][] = [
    ["move 1", /move needs two queue positions/],
    ["move 0 2", /move needs two/],
    ["move 1 2 3", /move needs two/],
    ["remove x", /remove needs a queue position/],
    ["remove 1.5", /remove needs/],
    ["accept", /accept needs an inbox number/],
    ["reject -1", /reject needs/],
    ["request", /request needs a file path/],
    ["retry", /retry needs a peer's name/],
    ["skip-peer  ", /skip-peer needs/],
  ];
  for (const [line, want] of bad) {
    const r = parseCommand(line);
    assertTrue("error" in r && want.test(r.error), `${line}: ${JSON.stringify(r)}`);
  }
});

Deno.test("parseCommand() reads the click test: clicks on|off, or JSON with a boolean", () => {
  assertEquals(parseCommand("clicks on"), { cmd: "clicks", on: true });
  assertEquals(parseCommand("CLICKS Off"), { cmd: "clicks", on: false });
  assertEquals(parseCommand('{"cmd":"clicks","on":true}'), { cmd: "clicks", on: true });
  assertEquals(parseCommand('{"cmd":"clicks","on":false}'), { cmd: "clicks", on: false });
  for (const bad of ["clicks", "clicks maybe", '{"cmd":"clicks","on":"on"}', '{"cmd":"clicks"}']) {
    const r = parseCommand(bad);
    assertTrue("error" in r && /clicks needs on or off/.test(r.error), bad);
  }
  assertTrue(LOCAL_COMMANDS.has("clicks"), "a peer may ask for the click test");
  const help = parseCommand("dance");
  assertTrue("error" in help && help.error.includes("clicks on|off"), "listed in the help");
});

Deno.test("parseCommand() reads the calibration probe: this device, or a peer by name", () => {
  assertEquals(parseCommand("probe"), { cmd: "probe" });
  assertEquals(parseCommand("probe Sam (2)"), { cmd: "probe", peer: "Sam (2)" });
  assertEquals(parseCommand('{"cmd":"probe","peer":"Sam"}'), { cmd: "probe", peer: "Sam" });
  assertEquals(parseCommand('{"cmd":"probe"}'), { cmd: "probe" });
  const bad = parseCommand('{"cmd":"probe","peer":7}');
  assertTrue("error" in bad && /probe takes a peer's name/.test(bad.error));
  assertTrue(!LOCAL_COMMANDS.has("probe"), "only the host schedules probes");
});

Deno.test("parseCommand() reads calibrate: every device, or one peer by name", () => {
  assertEquals(parseCommand("calibrate"), { cmd: "calibrate" });
  assertEquals(parseCommand("calibrate all"), { cmd: "calibrate" });
  assertEquals(parseCommand("calibrate Sam (2)"), { cmd: "calibrate", peer: "Sam (2)" });
  assertEquals(parseCommand('{"cmd":"calibrate","peer":"Kim"}'), { cmd: "calibrate", peer: "Kim" });
  const bad = parseCommand('{"cmd":"calibrate","peer":3}');
  assertTrue("error" in bad && /calibrate takes a peer's name/.test(bad.error));
  assertTrue(!LOCAL_COMMANDS.has("calibrate"), "only the host calibrates");
  const help = parseCommand("dance");
  assertTrue("error" in help && help.error.includes("calibrate [PEER|all]"), "listed in the help");
});
