import assert from "node:assert/strict";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { main, parseFlags } from "../main.ts";
import { EXIT, maxPeersOf, UsageError } from "./options.ts";

Deno.test("--max-peers takes a whole number from 1 to 20 and defaults to 5", () => {
  assertEquals(maxPeersOf({}), 5);
  assertEquals(maxPeersOf({ "max-peers": 1 }), 1);
  assertEquals(maxPeersOf({ "max-peers": 20 }), 20);
  for (const bad of [0, 21, 2.5, -3]) {
    assertThrows(
      () => maxPeersOf({ "max-peers": bad }),
      new RegExp(`--max-peers must be a whole number from 1 to 20, not ${bad}\\.$`),
    );
  }
  // A UsageError: main prints it as one line and exits with code 2.
  assert.throws(() => maxPeersOf({ "max-peers": 0 }), UsageError);
});

Deno.test("--max-peers that is not a number is refused by the flag parser", () => {
  assertThrows(
    () => parseFlags(["--max-peers", "many"], { "max-peers": "number" }),
    /--max-peers must be a number, not "many"\.$/,
  );
});

/** Runs main with `args`, returning its exit code and what it printed on stderr and stdout. */
async function run(args: string[]) {
  const err: string[] = [], out: string[] = [];
  const { error, log } = console;
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  try {
    return { code: await main(args), err: err.join("\n"), out: out.join("\n") };
  } finally {
    console.error = error;
    console.log = log;
  }
}

Deno.test("host and the app take --max-peers and list it in --help; join does not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-opts-" });
  try {
    const log = ["--log-file", `${dir}/log`];
    const host = ["host", "--headless", "--name", "J", "--as", "A", "--audio", "null", ...log];
    const tooMany = await run([...host, "--max-peers", "21"]);
    assertEquals(tooMany.code, EXIT.usage);
    assertEquals(
      tooMany.err,
      "phaselock: --max-peers must be a whole number from 1 to 20, not 21.",
    );
    const app = await run(["--no-window", "--max-peers", "0", ...log]);
    assertEquals(app.code, EXIT.usage);
    assertEquals(app.err, "phaselock: --max-peers must be a whole number from 1 to 20, not 0.");
    const join = await run(["join", "--headless", "1.2.3.4:7420", "--as", "S", "--max-peers", "3"]);
    assertEquals(join.code, EXIT.usage);
    assertEquals(join.err, "phaselock: Unknown option --max-peers. See --help.");
    for (const cmd of ["host", "app"]) {
      const help = await run(["--help", cmd]);
      assertEquals(
        /--max-peers N +how many peers may join.*1–20 \(default 5\)/.test(help.out),
        true,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
