/**
 * Notices in Chromium, the jam's (Notices over its model) and the list both apps share
 * (NoticeList): buttons send their command and close the notice, errors and notices with buttons
 * stay, the others go by themselves, each on its own timer.
 */
import assert from "node:assert/strict";
import { launchChromium } from "../../tests/harness/browser.ts";
import { serveBundledPage } from "../../tests/harness/bundled_page.ts";

const ROOT = new URL("../../", import.meta.url);
const url = (path: string) => JSON.stringify(new URL(path, ROOT).href);

const ENTRY = `/// <reference lib="dom" />
import { render } from "preact";
import { Notices } from ${url("ui/components/Notices.tsx")};
import { createNoticesModel, pushNotice } from ${url("ui/models/notices.ts")};
const g = globalThis as unknown as Record<string, unknown>;
const model = createNoticesModel();
const sent: unknown[] = [];
g.sent = sent;
g.push = (n: unknown) => pushNotice(model, n as never);
render(<Notices model={model} send={(c) => sent.push(c)} />, document.getElementById("app")!);
`;

Deno.test({
  name: "jam notices: a button sends its command and closes the notice; errors and notices " +
    "with buttons stay; the others go by themselves, each on its own timer",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const chromium = await launchChromium();
    const page = await serveBundledPage(ENTRY);
    try {
      const p = await chromium.page(page.url);
      const push = (n: unknown) =>
        p.evaluate((n) => (globalThis as unknown as { push(n: unknown): void }).push(n), n);
      // As a failed transfer is told (ui/models/app.ts), an error, and a notice.
      await push({
        level: "error",
        message: 'Sam could not get "Song.mp3": the connection closed.',
        actions: [
          { label: "Retry", command: { cmd: "retry", peer: "Sam" } },
          { label: "Play without them", command: { cmd: "skip-peer", peer: "Sam" } },
        ],
      });
      await push({
        level: "warn",
        message: "Kim's copy was corrupt; fetching it again.",
        actions: [],
      });
      await push({ level: "error", message: "The host refused the file." });
      await push({ level: "info", message: "Kim joined." });
      const status = p.getByRole("status");
      await p.getByText("Kim joined.").waitFor();
      assert.equal(await p.getByRole("alert").count(), 2);
      // 5 s later a second info notice: the first still goes 8 s after it came, not 8 s later.
      await p.waitForTimeout(5000);
      await push({ level: "info", message: "Lee joined." });
      await p.getByText("Kim joined.").waitFor({ state: "detached", timeout: 4500 });
      assert.equal(await p.getByText("Lee joined.").count(), 1);
      // The errors are still there; so is the warning (no buttons: gone with Kim's notice).
      assert.equal(await p.getByRole("alert").count(), 2);
      assert.equal(await p.getByText(/copy was corrupt/).count(), 0);
      // Retry sends its command and closes its notice; the other error stays until dismissed.
      await p.getByRole("button", { name: "Retry" }).click();
      assert.deepEqual(await p.evaluate("globalThis.sent"), [{ cmd: "retry", peer: "Sam" }]);
      await p.getByText(/could not get/).waitFor({ state: "detached", timeout: 2000 });
      await p.getByRole("alert").getByRole("button", { name: "Dismiss" }).click();
      assert.equal(await p.getByRole("alert").count(), 0);
      await p.getByText("Lee joined.").waitFor({ state: "detached", timeout: 9000 });
      assert.equal(await status.count(), 0);
      assert.deepEqual(chromium.consoleErrors(), []);
    } finally {
      await chromium.close();
      await page.close();
    }
  },
});
