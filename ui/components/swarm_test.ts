/**
 * The swarm page's screens in Chromium, from made-up views: a fake member (its view a signal
 * the test replaces, its actions recorded) behind SwarmApp. Finds controls by role and name,
 * as a person with a screen reader would. Needs Debian's Chromium (tests/setup.ts installs it;
 * launchChromium fails with a sentence without it).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Page } from "playwright-core";
import type { SwarmView } from "../../swarm/view.ts";
import { launchChromium } from "../../tests/harness/browser.ts";
import {
  fakeFile as file,
  fakeMember as member,
  serveFakeSwarmPage,
} from "../../tests/harness/fake_swarm_page.ts";

const FILES = [
  file("Sunset Drive.mp3"),
  file("Neon Rain.mp3", { progress: 0.4, seeded: false, playable: false }),
  file("Night Drive.mp3", { mine: true, sources: 0 }),
  file("Long Set.mp3", { progress: 0, seeded: false, playable: false, queued: true }),
];
const JOINED: SwarmView = {
  phase: "joined",
  swarmName: "Rooftop",
  me: { id: 2, name: "Mia" },
  link: "ok",
  clock: { locked: true, rttMs: 20, errorMs: 0.3 },
  members: [
    member(1, "Alex", { director: true, progress: 1 }),
    member(2, "Mia", { me: true, progress: 0.4 }),
    member(3, "Jo", { linked: false, progress: 0.1 }),
  ],
  director: 1,
  iAmDirector: false,
  files: FILES,
  transport: { file: FILES[1].id, playing: false, positionSec: 0, durationSec: 200 },
  status: "Fetching 40 %",
  waitingFor: [],
  speakerDelayMs: 35,
  clicks: false,
  volume: 0.8,
  muted: false,
  needsTap: false,
  notices: [],
};
const HOME: SwarmView = {
  ...JOINED,
  phase: "home",
  swarmName: "",
  me: null,
  clock: null,
  members: [],
  director: null,
  files: [],
  transport: { file: null, playing: false, positionSec: 0, durationSec: null },
  status: "",
};
const DIRECTING: SwarmView = {
  ...JOINED,
  me: { id: 1, name: "Alex" },
  iAmDirector: true,
  members: JOINED.members.map((m) => ({ ...m, me: m.id === 1 })),
  status: "Waiting for 2 members",
  waitingFor: [{ id: 2, name: "Mia", progress: 0.4 }, { id: 3, name: "Jo", progress: 0.1 }],
};

const setView = (page: Page, v: SwarmView) =>
  page.evaluate((v) => (globalThis as unknown as { setView(v: unknown): void }).setView(v), v);
/** Presses `key` with nothing focused: the page's own keys, not a button's or a field's. */
async function press(page: Page, key: string) {
  await page.evaluate("document.activeElement?.blur()");
  await page.keyboard.press(key);
}
/** The actions asked for since the last call, and forgets them. */
const calls = (page: Page) =>
  page.evaluate(() => {
    const c = (globalThis as unknown as { calls: unknown[][] }).calls;
    return c.splice(0, c.length);
  });

Deno.test({
  name: "swarm screens: names, actions, keys, and a 360 px phone",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const chromium = await launchChromium();
    const fake = await serveFakeSwarmPage();
    try {
      const page = await chromium.page(fake.url);

      await t.step("join: validation, the Join action, joining", async () => {
        await setView(page, { ...HOME, homeMessage: "The server closed the swarm." });
        await page.getByRole("heading", { name: "Join a swarm" }).waitFor();
        assert.equal(
          await page.getByRole("alert").first().innerText(),
          "The server closed the swarm.",
        );
        const join = page.getByRole("button", { name: "Join", exact: true });
        await join.click();
        await page.getByRole("alert").filter({ hasText: "Type the swarm key your friends use." })
          .waitFor();
        await page.getByRole("textbox", { name: "Swarm key" }).fill("blue-otter");
        await join.click();
        await page.getByRole("alert").filter({ hasText: "Say who you are: your name." }).waitFor();
        assert.equal(await page.getByLabel("Your name").getAttribute("maxlength"), "40");
        assert.equal(await page.getByLabel("Swarm key").getAttribute("autocomplete"), "off");
        await page.getByLabel("Your name").fill("Mia");
        await join.click();
        assert.deepEqual(await calls(page), [["join", "blue-otter", "Mia"]]);
        await setView(page, { ...HOME, phase: "joining" });
        assert.equal(await join.isDisabled(), true);
        assert.equal(await join.innerText(), "Joining…");
      });

      await t.step("a member's screen", async () => {
        await setView(page, JOINED);
        assert.equal(await page.getByRole("status").first().innerText(), "Fetching 40 %");
        await page.getByRole("heading", { name: "Rooftop" }).waitFor();
        assert.match(await page.locator("header").innerText(), /3 members/);
        assert.match(await page.locator("header").innerText(), /clock locked/);
        assert.equal(await page.getByRole("button", { name: "Select" }).count(), 0);
        await page.getByRole("button", { name: "Take control" }).click();
        await page.getByRole("button", { name: "Leave" }).click();
        const neon = page.getByRole("progressbar", { name: "Neon Rain.mp3 progress" });
        assert.equal(await neon.getAttribute("aria-valuenow"), "40");
        const night = page.getByRole("listitem", { name: "Night Drive.mp3" });
        await night.getByText("yours", { exact: true }).waitFor();
        await night.getByText("seeded", { exact: true }).waitFor();
        await page.getByRole("listitem", { name: "Sunset Drive.mp3" })
          .getByText("from 3 members").waitFor();
        // Waiting for room under the fetch cap: "queued", not a 0 % that looks stuck.
        const long = page.getByRole("listitem", { name: "Long Set.mp3" });
        await long.getByText("queued", { exact: true }).waitFor();
        assert.equal(await long.getByText("0 %").count(), 0);
        await page.getByRole("checkbox", { name: "Enable Sunset Drive.mp3" }).click();
        assert.match(await page.getByText("Directed by Alex").innerText(), /Directed by Alex/);
        await press(page, "m");
        await press(page, " ");
        assert.deepEqual(await calls(page), [
          ["takeControl"],
          ["leave"],
          ["setEnabled", "sunset-drive-mp3", false],
          ["setVolume", 0.8, true],
        ]);
        await page.getByRole("button", { name: "Click test" }).click();
        await page.getByRole("slider", { name: "Speaker delay" }).waitFor();
        await page.getByRole("button", { name: "Mute" }).click();
        assert.deepEqual(await calls(page), [["setClicks", true], ["setVolume", 0.8, true]]);
        // Typing in a field is typing: no key acts.
        await setView(page, { ...JOINED, iAmDirector: true });
        await page.getByRole("slider", { name: "Volume" }).focus();
        await page.keyboard.press("m");
        assert.deepEqual(await calls(page), []);
      });

      await t.step("the director: Select, Play, Start now, Space", async () => {
        await setView(page, DIRECTING);
        await page.getByText("You direct").waitFor();
        await page.getByText("Waiting for 2 members: Mia 40 %, Jo 10 %").waitFor();
        const selected = page.getByRole("button", { name: "Selected" });
        assert.equal(await selected.getAttribute("aria-pressed"), "true");
        await page.getByRole("listitem", { name: "Sunset Drive.mp3" })
          .getByRole("button", { name: "Select" }).click();
        await page.getByRole("button", { name: "Start now" }).click();
        await page.getByRole("button", { name: "Resign" }).click();
        await press(page, " "); // waiting: Space stops
        assert.deepEqual(await calls(page), [
          ["select", "sunset-drive-mp3"],
          ["startNow"],
          ["resign"],
          ["stop"],
        ]);
        await setView(page, { ...DIRECTING, waitingFor: [] });
        await press(page, " ");
        await page.getByRole("button", { name: "Play", exact: true }).click();
        assert.deepEqual(await calls(page), [["play"], ["play"]]);
        const none = { file: null, playing: false, positionSec: 0, durationSec: null };
        await setView(page, { ...DIRECTING, waitingFor: [], transport: none });
        const play = page.getByRole("button", { name: "Play", exact: true });
        assert.equal(await play.isDisabled(), true);
        const why = await play.getAttribute("aria-describedby");
        assert.match(await page.locator(`#${why}`).innerText(), /Select a file first/);
        await press(page, " ");
        assert.deepEqual(await calls(page), []);
      });

      await t.step("sharing: the file input, its error, the limit", async () => {
        await setView(page, JOINED);
        await page.evaluate(() => {
          (globalThis as unknown as { shareAnswer: string }).shareAnswer = "Not an MP3 file.";
        });
        await page.getByLabel("Share a file").setInputFiles({
          name: "song.mp3",
          mimeType: "audio/mpeg",
          buffer: Buffer.alloc(8),
        });
        await page.getByRole("alert").filter({ hasText: "Not an MP3 file." }).waitFor();
        assert.deepEqual(await calls(page), [["share", "song.mp3"]]);
        const input = page.getByLabel("Share a file");
        assert.equal(await input.getAttribute("accept"), ".mp3,audio/mpeg");
        assert.equal(await input.getAttribute("multiple"), null);
        await setView(page, { ...JOINED, files: FILES.map((f) => ({ ...f, mine: true })) });
        assert.equal(await input.isDisabled(), true);
        await page.getByText("You share 3 files already (the most)").waitFor();
      });

      await t.step("tap overlay, notices, banner", async () => {
        await setView(page, {
          ...JOINED,
          link: "reconnecting",
          notices: [{ id: 7, level: "error", text: "Jo's copy of Neon Rain was corrupt." }],
          needsTap: true,
        });
        await page.getByRole("alert").filter({ hasText: "reconnecting" }).waitFor();
        await page.getByRole("button", { name: /Tap to start audio/ }).click();
        await setView(page, { ...JOINED, notices: [{ id: 7, level: "error", text: "x" }] });
        await page.getByRole("button", { name: "Dismiss" }).click();
        assert.deepEqual(await calls(page), [["tap"], ["dismiss", 7]]);
      });

      await t.step("360 px wide: nothing sticks out, buttons are 44 px tall", async () => {
        await page.setViewportSize({ width: 360, height: 740 });
        for (const v of [HOME, JOINED, DIRECTING]) {
          await setView(page, v);
          const wide = await page.evaluate<number>("document.documentElement.scrollWidth");
          assert.ok(wide <= 360, `${v.phase}: page is ${wide} px wide`);
          const short = await page.evaluate(`[...document.querySelectorAll("button, .swarm-share")]
            .map((b) => [b.textContent, b.getBoundingClientRect().height])
            .filter(([, h]) => h > 0 && h < 44)`);
          assert.deepEqual(short, [], `${v.phase}: buttons under 44 px`);
        }
      });
      assert.deepEqual(chromium.consoleErrors(), []);
    } finally {
      await chromium.close();
      await fake.close();
    }
  },
});
