/**
 * Retakes the screenshots of this folder that show a jam in a browser. home.png and
 * host-playing.png show the real window; the window test takes them:
 * `PHASELOCK_SCREENSHOT_DIR=docs/screenshots deno test -A tests/app_window_test.ts`.
 *
 *     deno run -A docs/screenshots/take.ts
 *
 * Runs a host app and a peer app without windows, their UIs and a phone-sized browser peer in
 * Debian's Chromium, all playing into a private PulseAudio (tests/setup.ts installs both).
 */
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../../tests/harness/browser.ts";
import { freePort } from "../../tests/harness/ports.ts";
import { AppProcess } from "../../tests/harness/proc.ts";
import { startPulse } from "../../tests/harness/pulse.ts";
import { makeNoiseMp3 } from "../../tests/harness/tracks.ts";

const OUT = new URL(".", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The app without a window, playing into device `k`; resolves with its UI address. */
async function app(tmp: string, name: string, env: Record<string, string>) {
  const p = new AppProcess([
    ...["--no-window", "--audio", "pulse", "--no-discover", "--no-advertise"],
    ...["--config-dir", `${tmp}/${name}-cfg`, "--cache-dir", `${tmp}/${name}-cache`],
    ...["--log-file", `${tmp}/${name}.log`],
  ], { env });
  const ui = await p.waitFor((e) => e.type === "ui", 30000, `${name}'s UI address`);
  return { p, url: ui.url as string };
}

async function open(browser: Browser, url: string, phone = false): Promise<Page> {
  const context = await browser.newContext(
    phone
      ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }
      : { viewport: { width: 1280, height: 800 } },
  );
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

async function shot(page: Page, name: string) {
  await sleep(300); // let transitions settle
  await Deno.writeFile(`${OUT}${name}`, await page.screenshot());
  console.log(`wrote ${name}`);
}

async function pick(page: Page, button: string, files: string[]) {
  const [chooser] = await Promise.all([
    page.waitForEvent("filechooser"),
    page.getByRole("button", { name: button }).click(),
  ]);
  await chooser.setFiles(files);
}

const pulse = await startPulse(3);
const tmp = await Deno.makeTempDir({ prefix: "phaselock-shots-" });
const procs: AppProcess[] = [];
const chromium = await launchChromium({ pulse: { env: pulse.env(2) } });
try {
  const song = (n: string) => `${tmp}/${n}.mp3`;
  await Promise.all(
    [["Sunset Drive", 40], ["Neon Rain", 30], ["Night Drive", 20]].map(([n, s]) =>
      makeNoiseMp3(song(n as string), s as number)
    ),
  );
  const host = await app(tmp, "host", pulse.env(0));
  const sam = await app(tmp, "sam", pulse.env(1));
  procs.push(host.p, sam.p);

  // Create Jam on the default port when it is free.
  const h = await open(chromium.browser, host.url);
  let port = 7420;
  try {
    Deno.listen({ port }).close();
  } catch {
    port = freePort();
  }
  await h.getByRole("button", { name: "Create Jam" }).click();
  await h.getByLabel("Session name").fill("Friday Night Vibes");
  await h.getByLabel("Your name").fill("Alex");
  await h.getByLabel("Port").fill(String(port));
  await h.getByRole("button", { name: "Create Jam" }).click();
  await h.getByRole("heading", { name: "Friday Night Vibes" }).waitFor({ timeout: 15000 });
  await pick(h, "Add Song", [song("Sunset Drive"), song("Neon Rain")]);
  await h.locator(".queue-list .track").nth(1).waitFor({ timeout: 30000 });
  await h.getByRole("button", { name: "Add demo track" }).click();
  await h.locator(".queue-list .track").nth(2).waitFor({ timeout: 30000 });
  const joinUrl = (await h.locator(".join-url").innerText()).replace(/\s/g, "");

  // Sam joins from the app by address; a phone opens the join page.
  const s = await open(chromium.browser, sam.url);
  await s.getByRole("button", { name: "Join Jam" }).click();
  await s.getByLabel("Your name").fill("Sam");
  await s.getByLabel("Host address").fill(new URL(joinUrl).host);
  await s.getByRole("button", { name: "Join", exact: true }).click();
  await s.getByRole("button", { name: "Request Song" }).waitFor({ timeout: 15000 });

  const phone = await open(chromium.browser, joinUrl, true);
  await phone.getByRole("button", { name: "Join" }).waitFor();
  await shot(phone, "phone-join.png");
  await phone.getByLabel("Your name").fill("Mia");
  await phone.getByRole("button", { name: "Join" }).click();
  await phone.getByRole("button", { name: "Request Song" }).waitFor({ timeout: 15000 });

  // Play once everyone has the track; Sam asks for a song meanwhile.
  const play = h.getByRole("button", { name: "Play" });
  for (let i = 0; !(await play.isEnabled()); i++) {
    if (i > 600) throw new Error("Play never became enabled");
    await sleep(100);
  }
  await play.click();
  await pick(s, "Request Song", [song("Night Drive")]);
  await h.getByRole("button", { name: /^Accept/ }).waitFor({ timeout: 15000 });
  await sleep(5000);
  await shot(h, "host-session.png");
  await shot(s, "peer.png");
  await shot(phone, "phone-peer.png");
} finally {
  await Promise.all(procs.map((p) => p.quit()));
  await chromium.close();
  await pulse.stop();
  await Deno.remove(tmp, { recursive: true });
}
