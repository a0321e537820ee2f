/**
 * The macOS app bundle and its disk image:
 *
 *   PhaseLock.app/Contents/Info.plist            from VERSION and APP (infoPlist below)
 *   PhaseLock.app/Contents/PkgInfo               "APPL????"
 *   PhaseLock.app/Contents/MacOS/phaselock       the compiled program
 *   PhaseLock.app/Contents/Resources/phaselock.icns
 *
 * Signing, the `.dmg` and notarisation need macOS's own tools (codesign, hdiutil, xcrun), so
 * those steps run only there; the bundle itself can be assembled anywhere.
 */
import { build } from "plist";
import { APP, VERSION } from "../../app/version.ts";
import { SERVICE } from "../../net/discovery.ts";
import { ICNS_FILE } from "../icons.ts";

/** The entitlements the signed program needs (V8's JIT, the webview's addon, the microphone). */
export const ENTITLEMENTS = new URL("entitlements.plist", import.meta.url);

/** The oldest macOS the bundle claims: the first with Apple silicon, a floor for both arches. */
export const MIN_MACOS = "11.0";

/** Info.plist's keys. */
export function infoPlist(): Record<string, string | boolean | string[]> {
  return {
    CFBundleDevelopmentRegion: "en",
    CFBundleDisplayName: APP.name,
    CFBundleExecutable: "phaselock",
    CFBundleIconFile: "phaselock.icns",
    CFBundleIdentifier: APP.id,
    CFBundleInfoDictionaryVersion: "6.0",
    CFBundleName: APP.name,
    CFBundlePackageType: "APPL",
    CFBundleShortVersionString: VERSION,
    CFBundleVersion: VERSION,
    LSApplicationCategoryType: "public.app-category.music",
    LSMinimumSystemVersion: MIN_MACOS,
    NSHighResolutionCapable: true,
    NSMicrophoneUsageDescription:
      "PhaseLock listens through the microphone to measure how late your speakers play, " +
      "so every device in the jam sounds at the same moment.",
    // macOS 15 asks before an app reaches the LAN: jams are found (mDNS) and joined there.
    NSLocalNetworkUsageDescription:
      "PhaseLock finds and joins jams on your local network and plays in sync with them.",
    NSBonjourServices: [SERVICE.replace(/\.local$/, "")],
  };
}

/** Builds `PhaseLock.app` at `app` (replacing what is there) around the program `bin`. */
export async function buildAppBundle(bin: string, app: string): Promise<void> {
  await Deno.remove(app, { recursive: true }).catch(() => {});
  const contents = `${app}/Contents`;
  await Deno.mkdir(`${contents}/MacOS`, { recursive: true });
  await Deno.mkdir(`${contents}/Resources`, { recursive: true });
  await Deno.writeTextFile(`${contents}/Info.plist`, build(infoPlist()));
  await Deno.writeTextFile(`${contents}/PkgInfo`, "APPL????");
  await Deno.copyFile(bin, `${contents}/MacOS/phaselock`);
  await Deno.chmod(`${contents}/MacOS/phaselock`, 0o755);
  await Deno.copyFile(ICNS_FILE, `${contents}/Resources/phaselock.icns`);
}
