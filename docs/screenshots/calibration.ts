/**
 * Retakes calibration.png: the host's Calibration panel after a calibration. The results are
 * made up (calibration_page.tsx feeds the UI its events): a real one needs a microphone hearing
 * real speakers, which a private PulseAudio cannot fake convincingly.
 *
 *     deno run -A docs/screenshots/calibration.ts
 */
import { launchChromium } from "../../tests/harness/browser.ts";

const HERE = new URL(".", import.meta.url);
const ROOT = new URL("../../", import.meta.url);

const tmp = await Deno.makeTempDir({ prefix: "phaselock-calibration-shot-" });
const chromium = await launchChromium();
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/") {
    return new Response(
      '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" ' +
        'content="dark"><link rel="icon" href="data:,"><link rel="stylesheet" href="/app.css">' +
        '</head><body><div id="app"></div>' +
        '<script type="module" src="/page.js"></script></body></html>',
      { headers: { "content-type": "text/html" } },
    );
  }
  if (path === "/app.css") {
    return new Response(await Deno.readFile(new URL("ui/styles.css", ROOT)), {
      headers: { "content-type": "text/css" },
    });
  }
  if (path === "/page.js") {
    return new Response(await Deno.readFile(`${tmp}/page.js`), {
      headers: { "content-type": "text/javascript" },
    });
  }
  return new Response(null, { status: 404 });
});
try {
  const built = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["bundle", "--quiet", "--platform", "browser"],
      ...["--config", new URL("deno.json", ROOT).pathname],
      ...["-o", `${tmp}/page.js`, new URL("calibration_page.tsx", HERE).pathname],
    ],
    stderr: "piped",
  }).output();
  if (!built.success) {
    throw new Error(`Cannot bundle the page: ${new TextDecoder().decode(built.stderr)}`);
  }
  const page = await chromium.page(`http://127.0.0.1:${server.addr.port}/`);
  // Tall enough that the song-request drawer (fixed at the bottom) stays below the card.
  await page.setViewportSize({ width: 1280, height: 1200 });
  const card = page.getByRole("region", { name: "Calibration" });
  await card.getByRole("table").waitFor();
  await Deno.writeFile(new URL("calibration.png", HERE), await card.screenshot());
  console.log("wrote calibration.png");
  const errors = chromium.consoleErrors();
  if (errors.length) throw new Error(errors.join("\n"));
} finally {
  await chromium.close();
  await server.shutdown();
  await Deno.remove(tmp, { recursive: true });
}
