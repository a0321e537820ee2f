/**
 * A page made for a test: a TSX entry bundled for the browser and served on loopback with the
 * app's stylesheet, for rendering the app's components over made-up state.
 */

const ROOT = new URL("../../", import.meta.url);

export interface BundledPage {
  /** Where the page is, on loopback. */
  url: string;
  close(): Promise<void>;
}

/**
 * Bundles `entry` (TSX for the browser, importing the app's modules by URL) and serves it as
 * `/page.js` under `html` (which loads it), with the app's stylesheet as `/app.css`.
 */
export async function serveBundledPage(
  entry: string,
  html = '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<link rel="icon" href="data:,"><link rel="stylesheet" href="/app.css"></head>' +
    '<body><div id="app"></div>' +
    '<script type="module" src="/page.js"></script></body></html>',
): Promise<BundledPage> {
  const dir = await Deno.makeTempDir({ prefix: "phaselock-bundled-page-" });
  try {
    await Deno.writeTextFile(`${dir}/page.tsx`, entry);
    const built = await new Deno.Command(Deno.execPath(), {
      args: [
        ...["bundle", "--quiet", "--platform", "browser"],
        ...["--config", new URL("deno.json", ROOT).pathname],
        ...["-o", `${dir}/page.js`, `${dir}/page.tsx`],
      ],
      stderr: "piped",
    }).output();
    if (!built.success) {
      throw new Error(`Cannot bundle the page: ${new TextDecoder().decode(built.stderr)}`);
    }
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
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
