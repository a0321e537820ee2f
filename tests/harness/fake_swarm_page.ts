/**
 * The swarm page's components over a fake member, for the screen tests and the screenshots:
 * SwarmApp (ui/components/SwarmApp.tsx) renders a view that the page's `setView` replaces; the
 * actions it is asked for are kept in its `calls`, and `share` answers with its `shareAnswer`.
 * Served as the real page is (ui/swarm.html and the stylesheet), with the fake's script in place
 * of the engine. No swarm server, no engine, no audio.
 */
import type { SwarmFileView, SwarmMemberView } from "../../swarm/view.ts";
import { type BundledPage, serveBundledPage } from "./bundled_page.ts";

const ROOT = new URL("../../", import.meta.url);

const ENTRY = `/// <reference lib="dom" />
import { render } from "preact";
import { signal } from "@preact/signals";
import { SwarmApp } from ${JSON.stringify(new URL("ui/components/SwarmApp.tsx", ROOT).href)};
const g = globalThis as unknown as Record<string, unknown>;
const calls: unknown[][] = [];
const view = signal<any>(null);
g.calls = calls;
g.shareAnswer = null;
g.setView = (v: unknown) => (view.value = v);
const member = new Proxy({ view }, {
  get(target, key) {
    if (key === "view") return target.view;
    if (key === "share") {
      return (f: File) => (calls.push(["share", f.name]), Promise.resolve(g.shareAnswer));
    }
    return (...args: unknown[]) => void calls.push([String(key), ...args]);
  },
});
function Page() {
  return view.value ? <SwarmApp member={member as any} /> : null;
}
render(<Page />, document.getElementById("app")!);
`;

/** A complete, playable file that three members offer, with `f` over it. */
export const fakeFile = (name: string, f: Partial<SwarmFileView> = {}): SwarmFileView => ({
  id: name.toLowerCase().replace(/\W+/g, "-"),
  name,
  sizeBytes: 3_240_000,
  progress: 1,
  seeded: true,
  mine: false,
  enabled: true,
  sources: 3,
  queued: false,
  playable: true,
  durationSec: 200,
  ...f,
});

/** A linked, locked member who does not direct, with `m` over it. */
export const fakeMember = (
  id: number,
  name: string,
  m: Partial<SwarmMemberView> = {},
): SwarmMemberView => ({
  id,
  name,
  me: false,
  director: false,
  linked: true,
  locked: true,
  ...m,
});

/** Bundles the fake page and serves it on a free loopback port (as ui/swarm.html is served). */
export async function serveFakeSwarmPage(): Promise<BundledPage> {
  const html = (await Deno.readTextFile(new URL("ui/swarm.html", ROOT)))
    .replace("/swarm.js", "/page.js").replace("/favicon.svg", "data:,");
  return await serveBundledPage(ENTRY, html);
}
