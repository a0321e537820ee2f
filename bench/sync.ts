/**
 * `deno task bench:sync [SCENARIO …] [--seconds N] [--out DIR]`
 *
 * The acoustic sync benchmark: real processes, real PulseAudio, real sockets in network
 * namespaces (needs root, pulseaudio, sox, lame, iproute2). Scenarios: chain (validates the
 * measuring chain), lan, wan, transport, latejoin, evening (a queue of seven tracks with a
 * crash, a rejoin and a song request), long (10 minutes). For each it prints a
 * one-line summary, then all results as JSON, and writes DIR/sync-SCENARIO.svg (error over
 * time per device pair) and DIR/sync.json.
 */
import { errorPlotSvg } from "./plot.ts";
import { runScenario, type ScenarioName, type ScenarioResult, SCENARIOS } from "./sync_rig.ts";

const f = (v: number | null | undefined, d = 3) =>
  v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(d);

export function summaryLine(r: ScenarioResult): string {
  const o = r.overall;
  const parts = [
    `${o.windows} windows`,
    `p50 ${f(o.p50Ms)} ms`,
    `p95 ${f(o.p95Ms)} ms`,
    `max ${f(o.maxMs)} ms`,
  ];
  const fig = r.figures;
  if (r.scenario === "chain") {
    parts.push(
      `0.1 ms read as ${f(fig["inserted0.1Ms_measuredMean"])} (p95 err ${
        f(fig["inserted0.1Ms_errorP95"])
      })`,
      `2 ms read as ${f(fig["inserted2Ms_measuredMean"])} (p95 err ${
        f(fig["inserted2Ms_errorP95"])
      })`,
    );
  }
  if (fig.playToSoundMs !== undefined) parts.push(`play→sound ${f(fig.playToSoundMs, 0)} ms`);
  const locks = Object.entries(fig).filter(([k]) => k.startsWith("startupToLockMs"));
  if (locks.length) {
    parts.push(`start→lock ${locks.map(([, v]) => f(v, 0)).join("/")} ms`);
  }
  if (fig.lateJoinToInSyncMs !== undefined) {
    parts.push(
      `late join→sound ${f(fig.lateJoinToSoundMs, 0)} ms, →in sync ${
        f(fig.lateJoinToInSyncMs, 0)
      } ms`,
    );
  }
  if (r.scenario === "evening") {
    parts.push(
      `${f(fig.tracksPlayed, 0)} tracks, ${f(fig.transitionsMeasured, 0)} transitions heard, ` +
        `largest gap ${f(fig.transitionGapMaxMs)} ms`,
      `crashed peer back in sync ${f(fig.rejoinToInSyncMs, 0)} ms`,
      `request→queued ${f(fig.requestToQueuedMs, 0)} ms`,
    );
  }
  const steps = Math.max(0, ...r.pairs.map((p) => p.maxStepMs));
  if (r.scenario === "long") parts.push(`largest step ${f(steps)} ms`);
  if (r.processes.length) {
    parts.push(
      `cpu ${r.processes.map((p) => `${p.name} ${p.cpuPercent.toFixed(0)}%`).join(" ")}`,
      `peak rss ${r.processes.map((p) => `${p.peakRssMb.toFixed(0)}`).join("/")} MB`,
    );
  }
  return `${r.scenario}: ${parts.join(", ")}`;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    if (i < 0) return undefined;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
  };
  const secondsArg = opt("seconds");
  const out = opt("out") ?? new URL("./results", import.meta.url).pathname;
  const wanted = args.length ? args : SCENARIOS;
  for (const w of wanted) {
    if (!SCENARIOS.includes(w as ScenarioName)) {
      console.error(`Unknown scenario "${w}". Scenarios: ${SCENARIOS.join(", ")}.`);
      Deno.exit(2);
    }
  }
  await Deno.mkdir(out, { recursive: true });
  const results: ScenarioResult[] = [];
  const lines: string[] = [];
  for (const name of wanted as ScenarioName[]) {
    const t0 = performance.now();
    console.error(`— ${name} …`);
    try {
      const r = await runScenario(name, {
        seconds: secondsArg ? Number(secondsArg) : undefined,
        log: (l) => console.error(`  ${l}`),
      });
      results.push(r);
      await Deno.writeTextFile(
        `${out}/sync-${name}.svg`,
        errorPlotSvg(`PhaseLock sync — ${name}: inter-device lag per pair`, r.pairs),
      );
      const line = summaryLine(r);
      lines.push(line);
      console.log(line);
      console.error(`  (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    } catch (e) {
      const line = `${name}: FAILED — ${(e as Error).message.split("\n")[0]}`;
      lines.push(line);
      console.log(line);
    }
  }
  // Series are in the SVGs and the JSON file; stdout carries the figures.
  const slim = results.map((r) => ({
    ...r,
    pairs: r.pairs.map(({ series: _s, ...p }) => p),
  }));
  await Deno.writeTextFile(`${out}/sync.json`, JSON.stringify(results, null, 1));
  console.log(JSON.stringify(slim));
  console.log(lines.join("\n"));
  if (lines.some((l) => l.includes("FAILED"))) Deno.exit(1);
}
