/**
 * The swarm page's components over a fake member, for the screen tests and the screenshots:
 * SwarmApp (ui/components/SwarmApp.tsx) renders a view that the page's `setView` replaces; the
 * actions it is asked for are kept in its `calls`, and `share` answers with its `shareAnswer`.
 * Served as the real page is (ui/swarm.html and the stylesheet), with the fake's script in place
 * of the engine. No swarm server, no engine, no audio.
 */
import type { SwarmFileView, SwarmMemberView } from "../../swarm/view.ts";

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

export interface FakeSwarmPage {
  /** Where the page is, on loopback. */
  url: string;
  close(): Promise<void>;
}

/** Bundles the fake page and serves it on a free loopback port. */
export async function serveFakeSwarmPage(): Promise<FakeSwarmPage> {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-fake-swarm-" });
  try {
    await Deno.writeTextFile(`${dir}/page.tsx`, ENTRY);
    const built = await new Deno.Command(Deno.execPath(), {
      args: [
        ...["bundle", "--quiet", "--platform", "browser"],
        ...["--config", new URL("deno.json", ROOT).pathname],
        ...["-o", `${dir}/page.js`, `${dir}/page.tsx`],
      ],
      stderr: "piped",
    }).output();
    if (!built.success) {
      throw new Error(
        `Cannot bundle the fake swarm page: ${new TextDecoder().decode(built.stderr)}`,
      );
    }
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const html = (await Deno.readTextFile(new URL("ui/swarm.html", ROOT)))
    .replace("/swarm.js", "/page.js").replace("/favicon.svg", "data:,");
  const files: Record<string, [URL | string, string]> = {
    "/app.css": [new URL("ui/styles.css", ROOT), "text/css"],
    "/page.js": [`${dir}/page.js`, "text/javascript"],
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/") return new Response(html, { headers: { "content-type": "text/html" } });
    const file = files[path];
    if (!file) return new Response(null, { status: 404 });
    return new Response(await Deno.readFile(file[0]), { headers: { "content-type": file[1] } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    async close() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
