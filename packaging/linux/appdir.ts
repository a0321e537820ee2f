/**
 * The Linux AppDir, the folder `appimagetool` turns into `PhaseLock-<VERSION>-x86_64.AppImage`:
 *
 *   AppRun                              runs usr/bin/phaselock with the arguments (APPIMAGE kept)
 *   org.phaselock.PhaseLock.desktop     the desktop entry, from phaselock.desktop
 *   phaselock.png, .DirIcon             the 256 px icon
 *   usr/bin/phaselock                   the compiled program
 *   usr/share/applications/…, usr/share/icons/hicolor/256x256/apps/phaselock.png
 *
 * WebKitGTK 4.1 is not inside: it comes from the user's system (design §7).
 */
import { APP, VERSION } from "../../app/version.ts";
import { pngFile } from "../icons.ts";

const HERE = new URL("./", import.meta.url);

/** The desktop entry: the template with the app's name, summary and version filled in. */
export async function desktopEntry(): Promise<string> {
  const template = await Deno.readTextFile(new URL("phaselock.desktop", HERE));
  const values: Record<string, string> = {
    NAME: APP.name,
    SUMMARY: APP.summary,
    VERSION,
  };
  return template.replace(/@([A-Z]+)@/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`phaselock.desktop names an unknown value @${k}@.`);
    return values[k];
  });
}

/** The desktop entry's file name (the app's reverse-DNS id, as desktops expect). */
export const DESKTOP_FILE = `${APP.id}.desktop`;

/** Builds the AppDir at `dir` (replacing what is there) around the program `bin`. */
export async function buildAppDir(bin: string, dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const apps = `${dir}/usr/share/applications`;
  const icons = `${dir}/usr/share/icons/hicolor/256x256/apps`;
  for (const d of [`${dir}/usr/bin`, apps, icons]) await Deno.mkdir(d, { recursive: true });

  await Deno.copyFile(bin, `${dir}/usr/bin/phaselock`);
  await Deno.chmod(`${dir}/usr/bin/phaselock`, 0o755);
  await Deno.copyFile(new URL("AppRun", HERE), `${dir}/AppRun`);
  await Deno.chmod(`${dir}/AppRun`, 0o755);

  const entry = await desktopEntry();
  await Deno.writeTextFile(`${dir}/${DESKTOP_FILE}`, entry);
  await Deno.writeTextFile(`${apps}/${DESKTOP_FILE}`, entry);

  await Deno.copyFile(pngFile(256), `${dir}/phaselock.png`);
  await Deno.copyFile(pngFile(256), `${icons}/phaselock.png`);
  await Deno.symlink("phaselock.png", `${dir}/.DirIcon`);
}
