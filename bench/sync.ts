/**
 * `deno task bench:sync [SCENARIO …] [--seconds N] [--out DIR]`
 *
 * The acoustic sync benchmark: real processes, real PulseAudio, real sockets in network
 * namespaces (needs root, pulseaudio, sox, lame, iproute2). Scenarios: chain (validates the
 * measuring chain), lan, wan, transport, latejoin, evening (a queue of seven tracks with a
 * crash, a rejoin and a song request), browser (Chromium and Firefox pages against a native
 * host: sync, page opened → in-sync sound, tab memory; WebKitGTK shorter), long (10 minutes),
 * snapcast (Snapcast's snapserver and three snapclients on the lan rig; after a lan in the same
 * run its line ends with the ratio against PhaseLock), calibrate (five rounds of calibration by
 * the host's microphone: a native peer and a Chromium page with hidden output latencies, each
 * measured against the host before and after), swarm (browser pages in a swarm: sync, Join →
 * clock locked; a 10 MB file spread to 1 and to 19 native members with capped uplinks).
 * For each it prints a one-line summary, then all results as JSON, and writes
 * DIR/sync-SCENARIO.svg (error over time per device pair; some scenarios add
 * DIR/sync-SCENARIO-NAME.svg) and DIR/sync.json, which keeps the latest result of every
 * scenario (those not run this time stay as they were).
 */
import { CALIBRATE_X_LABEL, calibrateSummary } from "./calibrate.ts";
import { swarmSummary } from "./swarm.ts";
import { errorPlotSvg } from "./plot.ts";
import { convergedAfterSec, IN_SYNC_MS, startSpreadMs } from "./snapcast.ts";
import {
  BROWSER_GOALS,
  runScenario,
  type ScenarioName,
  type ScenarioResult,
  SCENARIOS,
} from "./sync_rig.ts";

const f = (v: number | null | undefined, d = 3) =>
  v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(d);

/**
 * One line of figures for a result; `lan`, the latest lan result of the same run, gives the
 * snapcast line its comparison with PhaseLock.
 */
export function summaryLine(r: ScenarioResult, ctx: { lan?: ScenarioResult } = {}): string {
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
  if (r.scenario === "browser") parts.push(...browserSummary(fig));
  if (r.scenario === "snapcast") parts.push(...snapcastSummary(r, ctx.lan));
  if (r.scenario === "calibrate") parts.push(...calibrateSummary(fig));
  if (r.scenario === "swarm") parts.push(...swarmSummary(fig));
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

/** Start spread and convergence, beside PhaseLock's (same rig, length and track) if lan ran. */
function snapcastSummary(r: ScenarioResult, lan?: ScenarioResult): string[] {
  const converged = (s: number | null) => s === null ? "never" : `${f(s, 1)} s`;
  const perClient = (what: string) =>
    Object.entries(r.figures).filter(([k]) => k.startsWith(`${what}_`)).map(([, v]) => f(v, 0))
      .join("/");
  const beside = (v: string) => lan ? ` (PhaseLock ${v})` : "";
  const out = [
    `start spread ${f(r.figures.startSpreadMs, 2)} ms${
      beside(`${f(lan && startSpreadMs(lan.pairs), 2)} ms`)
    }`,
    `all pairs within ${IN_SYNC_MS} ms for good after ${converged(r.figures.convergedAfterSec)}${
      beside(converged(lan ? convergedAfterSec(lan.pairs) : null))
    }`,
    `snapclient underflows ${perClient("underflows")}, position jumps ${perClient("resyncs")}`,
  ];
  if (lan) {
    const ratio = r.overall.p95Ms / lan.overall.p95Ms;
    const verdict = !Number.isFinite(ratio)
      ? "no ratio"
      : ratio >= 1
      ? `${f(ratio, 1)}× worse`
      : `${f(1 / ratio, 1)}× better`;
    out.push(
      `Snapcast p95 ${f(r.overall.p95Ms, 2)} ms vs PhaseLock ${
        f(lan.overall.p95Ms, 2)
      } ms: ${verdict}`,
    );
  }
  return out;
}

/** The browser scenario's figures, each beside its goal. */
function browserSummary(fig: ScenarioResult["figures"]): string[] {
  const g = BROWSER_GOALS;
  const verdict = (v: number | null | undefined, goal: number, must?: number) =>
    v === null || v === undefined || Number.isNaN(v)
      ? "not measured"
      : v <= goal
      ? "met"
      : must !== undefined && v <= must
      ? "goal missed, within the must"
      : "missed";
  const s = (k: string) => f(fig[k] === null || fig[k] === undefined ? null : fig[k]! / 1000, 2);
  const out: string[] = [];
  for (const e of ["chromium", "firefox"]) {
    const p95 = fig[`p95Ms_${e}`];
    out.push(
      `${e}↔host p95 ${f(p95)} ms, max ${f(fig[`maxMs_${e}`], 2)}, after 10 s p95 ${
        f(fig[`settledP95Ms_${e}`])
      } [goal ≤ ${g.p95Ms}, must ≤ ${g.p95MustMs}: ${verdict(p95, g.p95Ms, g.p95MustMs)}]`,
    );
  }
  out.push(
    `play→sound host/chromium/firefox ${f(fig.playToSoundMs_host, 0)}/${
      f(fig.playToSoundMs_chromium, 0)
    }/${f(fig.playToSoundMs_firefox, 0)} ms (lead ${f(fig.leadMs, 0)} ms)`,
  );
  for (const e of ["chromium", "firefox"]) {
    // Heard but never within 1 ms while it played: a miss, not a missing measurement.
    const inSync = (k: string) =>
      fig[`${k}InSyncMs_${e}`] === null && typeof fig[`${k}SoundMs_${e}`] === "number"
        ? ["never within 1 ms", Infinity] as const
        : [`${s(`${k}InSyncMs_${e}`)} s`, fig[`${k}InSyncMs_${e}`]] as const;
    // First in sync is not yet for good: a young context's reports can pull it off again.
    const stays = (k: string) =>
      typeof fig[`${k}InSyncMs_${e}`] !== "number"
        ? ""
        : typeof fig[`${k}StableMs_${e}`] === "number"
        ? ` (stays within 1 ms from ${s(`${k}StableMs_${e}`)} s)`
        : " (off by more than 1 ms again before it closed)";
    const [openText, open] = inSync("openTo");
    const [keptText, kept] = inSync("reopenTo");
    out.push(
      `${e} page opened→in sync ${openText}${stays("openTo")} [goal ≤ ${
        g.openToInSyncMs / 1000
      } s: ${verdict(open, g.openToInSyncMs)}]` +
        (fig.pageTrackCache
          ? `, reopened (track kept${
            fig[`reopenDownloaded_${e}`] ? ", but downloaded" : ""
          }) ${keptText}${stays("reopenTo")} [goal ≤ ${g.openToInSyncCachedMs / 1000} s: ${
            verdict(kept, g.openToInSyncCachedMs)
          }]`
          : ", no track cache in the page"),
    );
  }
  for (const e of ["chromium", "firefox"]) {
    const rss = fig[`tabRssMb_${e}`];
    const heap = fig[`jsHeapUsedMb_${e}`];
    out.push(
      `${e} tab with a 10-min track: RSS ${f(rss, 0)} MB (anon ${f(fig[`tabAnonMb_${e}`], 0)}, ` +
        `PSS ${f(fig[`tabPssMb_${e}`], 0)}, peak ${f(fig[`tabPeakRssMb_${e}`], 0)}` +
        `${heap !== undefined ? `, JS heap ${f(heap, 1)}` : ""}` +
        `${
          typeof fig[`jsArrayBuffersMb_${e}`] === "number"
            ? `, ArrayBuffers ${f(fig[`jsArrayBuffersMb_${e}`], 0)}`
            : ""
        }) [goal ≤ ${g.tabMemoryMb} MB: ${verdict(rss, g.tabMemoryMb)}]`,
    );
  }
  out.push(
    `the 10-min track itself, as the page keeps it (int16 PCM): ${f(fig.memTrackPcmMb, 0)} MB`,
  );
  if (fig.p95Ms_webkit !== undefined) {
    out.push(
      `webkit↔host mean lag ${f(fig.meanLagMs_webkit, 1)} ms, p95 |lag| ${
        f(fig.p95Ms_webkit, 1)
      } ms (${f(fig.windows_webkit, 0)} windows, separate shorter pass)`,
    );
  }
  return out;
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
      const system = name === "snapcast" ? "Snapcast" : "PhaseLock";
      await Deno.writeTextFile(
        `${out}/sync-${name}.svg`,
        errorPlotSvg(
          `${system} sync — ${name}: inter-device lag per pair`,
          r.pairs,
          name === "calibrate" ? CALIBRATE_X_LABEL : undefined,
        ),
      );
      for (const p of r.plots ?? []) {
        await Deno.writeTextFile(
          `${out}/sync-${name}-${p.name}.svg`,
          errorPlotSvg(p.title, p.pairs, p.xLabel),
        );
      }
      const line = summaryLine(r, { lan: results.findLast((x) => x.scenario === "lan") });
      lines.push(line);
      console.log(line);
      console.error(`  (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    } catch (e) {
      console.error(`  ${(e as Error).message.slice(-3000)}`);
      const line = `${name}: FAILED — ${(e as Error).message.split("\n")[0]}`;
      lines.push(line);
      console.log(line);
    }
  }
  // Series are in the SVGs and the JSON file; stdout carries the figures.
  const slim = results.map((r) => ({
    ...r,
    pairs: r.pairs.map(({ series: _s, ...p }) => p),
    plots: r.plots?.map((pl) => ({ ...pl, pairs: pl.pairs.map(({ series: _s, ...p }) => p) })),
  }));
  // The latest result of each scenario: a run of one scenario keeps the others' results.
  let kept: ScenarioResult[] = [];
  try {
    const old = JSON.parse(await Deno.readTextFile(`${out}/sync.json`));
    if (Array.isArray(old)) kept = old;
  } catch { /* none yet, or unreadable: start again */ }
  const ran = new Set(results.map((r) => r.scenario));
  const merged = [...kept.filter((r) => !ran.has(r.scenario)), ...results]
    .sort((a, b) => SCENARIOS.indexOf(a.scenario) - SCENARIOS.indexOf(b.scenario));
  await Deno.writeTextFile(`${out}/sync.json`, JSON.stringify(merged, null, 1));
  console.log(JSON.stringify(slim));
  console.log(lines.join("\n"));
  if (lines.some((l) => l.includes("FAILED"))) Deno.exit(1);
}
