/**
 * A page's output keeps its sound-server stream while it waits. Chromium closes the stream of
 * an AudioContext that renders only zeros for ~30 s and opens a new one when sound comes; the
 * new stream's timing reports then wander for seconds, so a page that waited for a file or for
 * Play started out of sync. WebOutput never renders exact zeros (a −120 dBFS floor), so its
 * stream stays. Proven here on Debian's Chromium and a real PulseAudio: a bare context playing
 * zeros beside it loses its stream, the WebOutput's stays open and uncorked.
 */
import { assertTrue } from "./assert.ts";
import { launchChromium } from "./harness/browser.ts";
import { serveBundledPage } from "./harness/bundled_page.ts";
import { pactl, type PrivatePulse, startPulse } from "./harness/pulse.ts";

const ROOT = new URL("../", import.meta.url);
const url = (path: string) => JSON.stringify(new URL(path, ROOT).href);

const ENTRY = `/// <reference lib="dom" />
import { WebOutput } from ${url("ui/engine/web_output.ts")};
import { IDENTITY_MAP } from ${url("net/local_clock.ts")};
const g = globalThis as unknown as Record<string, unknown>;
g.startOutput = () => {
  const out = new WebOutput();
  out.setHostMap(IDENTITY_MAP);
  g.out = out;
};
g.startZeros = () => {
  const ctx = new AudioContext();
  const src = ctx.createBufferSource();
  src.buffer = ctx.createBuffer(1, ctx.sampleRate, ctx.sampleRate);
  src.loop = true;
  src.connect(ctx.destination);
  src.start();
  g.zeros = ctx;
};
`;

interface SinkInput {
  index: number;
  corked: boolean;
  app: string;
}

async function sinkInputs(pulse: PrivatePulse): Promise<SinkInput[]> {
  const list = JSON.parse(await pactl(pulse, "--format=json", "list", "sink-inputs")) as {
    index: number;
    corked: boolean;
    properties: Record<string, string>;
  }[];
  return list.map((s) => ({
    index: s.index,
    corked: s.corked,
    app: s.properties["application.name"] ?? "",
  }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: "a waiting page keeps its sound-server stream (Chromium closes a silent context's)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pulse = await startPulse(1);
    const env = pulse.env(0);
    const chromium = await launchChromium({ pulse: { env }, headless: true });
    const page = await serveBundledPage(ENTRY);
    try {
      const p = await chromium.page(page.url);
      const chromiumInputs = async () =>
        (await sinkInputs(pulse)).filter((s) => /chrom/i.test(s.app));
      const waitForInputs = async (n: number) => {
        for (let i = 0; i < 100; i++) {
          const list = await chromiumInputs();
          if (list.length >= n) return list;
          await sleep(100);
        }
        throw new Error(`Chromium never opened ${n} sound-server stream(s)`);
      };
      await p.evaluate("startOutput()");
      const [output] = await waitForInputs(1);
      await p.evaluate("startZeros()");
      const zeros = (await waitForInputs(2)).find((s) => s.index !== output.index)!;
      // 40 s of waiting: nothing to play on either.
      const seen: string[] = [];
      let zerosClosedAt = -1;
      for (let t = 0; t < 40; t += 2) {
        await sleep(2000);
        const list = await chromiumInputs();
        const o = list.find((s) => s.index === output.index);
        const z = list.find((s) => s.index === zeros.index);
        seen.push(
          `${t + 2} s: output ${o ? (o.corked ? "corked" : "open") : "gone"}, ` +
            `zeros ${z ? (z.corked ? "corked" : "open") : "gone"}`,
        );
        assertTrue(
          o !== undefined && !o.corked,
          `the output's stream closed while it waited:\n${seen.join("\n")}`,
        );
        if (zerosClosedAt < 0 && (!z || z.corked)) zerosClosedAt = t + 2;
      }
      console.log(
        `after 40 s with nothing to play: the output's stream ${output.index} still open; ` +
          `the bare context's closed after ${zerosClosedAt} s`,
      );
      // The behaviour the floor guards against is real here: the bare context lost its stream.
      assertTrue(
        zerosClosedAt > 0,
        `a context rendering only zeros kept its stream for 40 s (Chromium no longer closes ` +
          `silent streams?):\n${seen.join("\n")}`,
      );
      assertTrue(
        await p.evaluate("out.ctx.state === 'running'"),
        "the output's context stopped running",
      );
    } finally {
      await chromium.close();
      await page.close();
      await pulse.stop();
    }
  },
});
