/**
 * The app's icon files for the installers, made from ICON_SVG (the icon the UI serves):
 *
 *   deno run -A packaging/icons.ts
 *
 * renders the SVG to PNGs of every size the installers use with Debian's Chromium (the one the
 * tests drive) and writes `phaselock.icns` and `phaselock.ico` from those PNGs. The results are
 * committed in packaging/icons/, so packaging on any OS, in CI or elsewhere, needs no browser;
 * run this again only when the icon changes.
 */
import { ICON_SVG } from "../server/control.ts";
import { ICNS_TYPES, type IcnsType, ICO_SIZES, writeIcns, writeIco } from "./icon_formats.ts";

/** Where the icon files are kept. */
export const ICON_DIR = new URL("./icons/", import.meta.url);

/** Every PNG size made: the .ico's, the .icns's and the Linux desktop's (256). */
export const PNG_SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024] as const;

export const pngFile = (size: number) => new URL(`phaselock-${size}.png`, ICON_DIR);
export const ICNS_FILE = new URL("phaselock.icns", ICON_DIR);
export const ICO_FILE = new URL("phaselock.ico", ICON_DIR);

/** The `.icns` and `.ico` made from the PNGs in packaging/icons/ (or from `read`). */
export async function iconContainers(
  read: (size: number) => Promise<Uint8Array> = (s) => Deno.readFile(pngFile(s)),
): Promise<{ icns: Uint8Array; ico: Uint8Array }> {
  const types = Object.keys(ICNS_TYPES) as IcnsType[];
  const icns = writeIcns(
    await Promise.all(types.map(async (type) => ({ type, png: await read(ICNS_TYPES[type]) }))),
  );
  const ico = writeIco(await Promise.all(ICO_SIZES.map(read)));
  return { icns, ico };
}

/** Renders ICON_SVG at `sizes` with Chromium, transparent around the circles. */
async function renderPngs(sizes: readonly number[]): Promise<Map<number, Uint8Array>> {
  const { launchChromium } = await import("../tests/harness/browser.ts");
  const chromium = await launchChromium();
  const out = new Map<number, Uint8Array>();
  try {
    for (const size of sizes) {
      const page = await chromium.browser.newPage({
        viewport: { width: size, height: size },
        deviceScaleFactor: 1,
      });
      const svg = ICON_SVG.replace("<svg ", `<svg width="${size}" height="${size}" `);
      await page.setContent(
        `<!doctype html><html><body style="margin:0;background:transparent">${svg}</body></html>`,
      );
      const png = await page.screenshot({
        type: "png",
        omitBackground: true,
        clip: { x: 0, y: 0, width: size, height: size },
      });
      out.set(size, new Uint8Array(png));
      await page.close();
    }
  } finally {
    await chromium.close();
  }
  return out;
}

if (import.meta.main) {
  await Deno.mkdir(ICON_DIR, { recursive: true });
  const pngs = await renderPngs(PNG_SIZES);
  for (const [size, png] of pngs) await Deno.writeFile(pngFile(size), png);
  const { icns, ico } = await iconContainers((s) => Promise.resolve(pngs.get(s)!));
  await Deno.writeFile(ICNS_FILE, icns);
  await Deno.writeFile(ICO_FILE, ico);
  console.log(
    `Wrote ${pngs.size} PNGs (${PNG_SIZES.join(", ")} px), phaselock.icns (${icns.length} B) ` +
      `and phaselock.ico (${ico.length} B) to packaging/icons/.`,
  );
}
