/**
 * Retakes the swarm screenshots of this folder from made-up views: the swarm page's components
 * (ui/components/SwarmApp.tsx) render a fake member whose view this script sets, in Debian's
 * Chromium (tests/setup.ts installs it). No server, no engine, no audio.
 *
 *     deno run -A docs/screenshots/swarm.ts
 *
 * Writes swarm-join.png (a phone on the join page), swarm-member.png (a member's screen while
 * it fetches), swarm-director.png (the director waiting for two members to fetch the selected
 * file), swarm-phone.png (a member's whole screen on a 360 px wide phone) and
 * swarm-phone-playing.png (the director's phone while the swarm plays).
 */
import type { BrowserContextOptions, Page } from "playwright-core";
import type { SwarmView } from "../../swarm/view.ts";
import { launchChromium } from "../../tests/harness/browser.ts";
import {
  fakeFile as file,
  fakeMember as member,
  serveFakeSwarmPage,
} from "../../tests/harness/fake_swarm_page.ts";

const HERE = new URL(".", import.meta.url);

const FILES = [
  file("Sunset Drive.mp3", { sizeBytes: 3_240_000, durationSec: 203, sources: 3 }),
  file("Neon Rain (extended club mix).mp3", {
    sizeBytes: 9_870_000,
    durationSec: 412,
    progress: 0.4,
    seeded: false,
    playable: false,
    sources: 3,
  }),
  file("Night Drive.mp3", { sizeBytes: 2_100_000, durationSec: 131, mine: true }),
  file("Field recording, Lisbon.mp3", {
    sizeBytes: 14_500_000,
    durationSec: 640,
    progress: 0,
    seeded: false,
    enabled: false,
    playable: false,
    sources: 1,
  }),
  file("Sunrise set (live).mp3", {
    sizeBytes: 48_000_000,
    durationSec: 2400,
    progress: 0,
    seeded: false,
    playable: false,
    sources: 2,
    queued: true,
  }),
];

const BASE: SwarmView = {
  phase: "joined",
  swarmName: "Rooftop party",
  me: { id: 3, name: "Mia" },
  link: "ok",
  clock: { locked: true, rttMs: 23, errorMs: 0.4 },
  members: [
    member(1, "Alex", { director: true, progress: 1 }),
    member(2, "Sam", { progress: 1 }),
    member(3, "Mia", { me: true, progress: 0.4 }),
    member(4, "Kim", { progress: 1 }),
    member(5, "Jo", { linked: false, locked: false, progress: 0.1 }),
    member(6, "Robin", { locked: false, progress: 1 }),
    member(7, "Lee", { progress: 1 }),
  ],
  director: 1,
  iAmDirector: false,
  files: FILES,
  transport: { file: FILES[1].id, playing: false, positionSec: 0, durationSec: 412 },
  status: "Fetching 40 %",
  waitingFor: [],
  speakerDelayMs: 35,
  clicks: false,
  volume: 0.8,
  muted: false,
  needsTap: false,
  notices: [],
};

const JOIN: SwarmView = {
  ...BASE,
  phase: "home",
  homeMessage: "You left the swarm: the server was restarted.",
  swarmName: "",
  me: null,
  clock: null,
  members: [],
  director: null,
  files: [],
  transport: { file: null, playing: false, positionSec: 0, durationSec: null },
  status: "",
};

const DIRECTOR: SwarmView = {
  ...BASE,
  me: { id: 1, name: "Alex" },
  iAmDirector: true,
  members: BASE.members.map((m) => ({ ...m, me: m.id === 1 })),
  files: FILES.map((f, i) =>
    i === 1
      ? { ...f, mine: true, progress: 1, seeded: true, playable: true }
      : i === 2
      ? { ...f, mine: false }
      : f
  ),
  status: "Waiting for 2 members",
  waitingFor: [
    { id: 3, name: "Mia", progress: 0.4 },
    { id: 5, name: "Jo", progress: 0.1 },
  ],
  notices: [{ id: 1, level: "info", text: "Kim joined the swarm." }],
};

const PLAYING: SwarmView = {
  ...DIRECTOR,
  files: DIRECTOR.files.map((f) => ({
    ...f,
    progress: 1,
    seeded: true,
    playable: true,
    queued: false,
  })),
  members: DIRECTOR.members.map((m) => ({ ...m, progress: 1, linked: true, locked: true })),
  transport: { file: FILES[1].id, playing: true, positionSec: 83.4, durationSec: 412 },
  status: "Playing",
  waitingFor: [],
  notices: [],
};

const chromium = await launchChromium();
const fake = await serveFakeSwarmPage();

async function open(options: BrowserContextOptions, view: SwarmView): Promise<Page> {
  const context = await chromium.browser.newContext(options);
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
  await page.goto(fake.url);
  await page.evaluate(
    (v) => (globalThis as unknown as { setView(v: unknown): void }).setView(v),
    view,
  );
  return page;
}

async function shot(page: Page, name: string, fullPage = false) {
  await page.waitForTimeout(300); // fonts and the progress bar's first frames
  await Deno.writeFile(new URL(name, HERE), await page.screenshot({ fullPage }));
  console.log(`wrote ${name}`);
}

const errors: string[] = [];
const phone = (width: number): BrowserContextOptions => ({
  viewport: { width, height: 800 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
});
const desktop: BrowserContextOptions = { viewport: { width: 1280, height: 900 } };
try {
  const join = await open(phone(390), JOIN);
  await join.getByLabel("Swarm key").fill("blue-otter-42");
  await join.getByLabel("Your name").fill("Mia");
  await shot(join, "swarm-join.png");

  await shot(await open(desktop, BASE), "swarm-member.png", true);
  await shot(await open(desktop, DIRECTOR), "swarm-director.png", true);
  await shot(await open(phone(360), BASE), "swarm-phone.png", true);
  await shot(await open(phone(360), PLAYING), "swarm-phone-playing.png");
  if (errors.length) throw new Error(errors.join("\n"));
} finally {
  await chromium.close();
  await fake.close();
}
