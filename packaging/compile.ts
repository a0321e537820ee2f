/**
 * Builds the single binary: `dist/phaselock-<target>[.exe]` with the UI, the demo track, the
 * audio Worker, the MP3 decoder and only the target's window addon inside.
 *
 *   deno task compile [--target T] [--out DIR] [--print-args]
 *
 * T is one of the keys of TARGETS (default: this machine's). `deno compile` downloads the
 * Deno runtime for T from dl.deno.land unless `DENORT_BIN` names one; `--print-args` prints
 * the `deno compile` command line instead of running it. Prints one JSON line of figures
 * (sizes, seconds) and a summary.
 */
import { ensureBundle, filePath } from "../app/ui_assets.ts";
import { compileArgs, hostTarget, isTarget, ROOT, type Target, TARGETS } from "./manifest.ts";

function usage(message: string): never {
  console.error(`compile: ${message}`);
  console.error("usage: deno task compile [--target TARGET] [--out DIR] [--print-args]");
  console.error(`targets: ${Object.keys(TARGETS).join(", ")}`);
  Deno.exit(2);
}

function parse(args: string[]) {
  let target: string | null = hostTarget();
  let out = "dist";
  let printArgs = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--target") target = args[++i] ?? usage("--target needs a value.");
    else if (a === "--out") out = args[++i] ?? usage("--out needs a folder.");
    else if (a === "--print-args") printArgs = true;
    else usage(`unknown argument "${a}".`);
  }
  if (!target) usage(`this machine (${Deno.build.target}) is not a target; pass --target.`);
  if (!isTarget(target)) usage(`unknown target "${target}".`);
  return { target: target as Target, out, printArgs };
}

if (import.meta.main) {
  const { target, out, printArgs } = parse(Deno.args);
  const t0 = performance.now();
  await ensureBundle({ force: true });
  // The npm packages must be in node_modules (a fresh checkout has none yet): the manifest
  // lists what to leave out of that folder by exact path.
  if (!(await Deno.stat(new URL("node_modules/.deno", ROOT)).then(() => true, () => false))) {
    const installed = await new Deno.Command(Deno.execPath(), {
      args: ["install"],
      cwd: filePath(ROOT),
    }).output();
    if (!installed.success) usage("deno install failed: the npm packages are needed to compile.");
  }
  const output = `${out}/phaselock-${target}${TARGETS[target].exe}`;
  const icon = filePath(new URL("packaging/icons/phaselock.ico", ROOT));
  const args = await compileArgs(target, output, {
    icon: await Deno.stat(icon).then(() => icon, () => undefined),
  });
  if (printArgs) {
    console.log(JSON.stringify(["deno", ...args]));
    Deno.exit(0);
  }
  await Deno.mkdir(out, { recursive: true });
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: filePath(ROOT),
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!result.success) {
    console.error(
      `compile: deno compile failed for ${target}` +
        (Deno.env.get("DENORT_BIN") ? "." : " (it downloads the runtime from dl.deno.land: " +
          "without that site, set DENORT_BIN to a denort binary)."),
    );
    Deno.exit(1);
  }
  const bytes = (await Deno.stat(filePath(new URL(output, ROOT)))).size;
  const runtime = Deno.env.get("DENORT_BIN");
  const runtimeBytes = runtime ? (await Deno.stat(runtime)).size : null;
  const figures = {
    target,
    output,
    bytes,
    runtimeBytes,
    payloadBytes: runtimeBytes === null ? null : bytes - runtimeBytes,
    seconds: Math.round(performance.now() - t0) / 1000,
  };
  console.log(JSON.stringify(figures));
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  console.log(
    `${output}: ${mb(bytes)}` +
      (figures.payloadBytes === null ? "" : ` (app ${mb(figures.payloadBytes)} + runtime)`) +
      ` in ${figures.seconds} s`,
  );
}
