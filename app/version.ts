/**
 * Who this build is: the version printed by `phaselock --version` and written into the
 * installers (Info.plist, the MSI, the AppImage's desktop entry), and the app's identity on
 * each OS. A release tag `vX.Y.Z` must equal VERSION (the release workflow checks).
 */
import { PROTOCOL_VERSION } from "../session/protocol.ts";

export const VERSION = "0.5.0";

export const APP = {
  name: "PhaseLock",
  /** Reverse-DNS id: macOS bundle identifier, the Linux desktop entry's file name. */
  id: "org.phaselock.PhaseLock",
  summary: "Many devices, one sound: play music in sync across computers and phones",
} as const;

/** The `--version` line: this build and the jam protocol it speaks. */
export function versionLine(): string {
  return `PhaseLock ${VERSION} (protocol ${PROTOCOL_VERSION}, Deno ${Deno.version.deno}, ` +
    `${Deno.build.target})`;
}
