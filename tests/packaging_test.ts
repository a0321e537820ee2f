/**
 * Everything of the packaging that runs on Linux, around stub programs (the real binary needs
 * the Deno runtime download, which only the release workflow has): the committed icons and
 * their containers, the AppImage's AppDir (desktop-file-validate, AppRun run for real), the
 * .app's Info.plist and entitlements, the MSI built by Debian's wixl and read back with
 * msiinfo, the WiX v4 source, the smoke test against the app run from source, and the release
 * workflow's consistency with deno.json and the repository. Missing tools fail, never skip.
 */
import { parse as parsePlist } from "plist";
import { parse as parseYaml } from "yaml";
import { assertEquals, assertThrows, assertTrue } from "./assert.ts";
import { APP, VERSION } from "../app/version.ts";
import {
  ICNS_TYPES,
  ICO_SIZES,
  pngSize,
  readIcns,
  readIco,
  writeIcns,
  writeIco,
} from "../packaging/icon_formats.ts";
import { ICNS_FILE, ICO_FILE, iconContainers, PNG_SIZES, pngFile } from "../packaging/icons.ts";
import { TARGETS } from "../packaging/package.ts";
import { UPGRADE_CODE } from "../packaging/windows/installer.ts";
import { findAll, parseXml, type XmlElement } from "../packaging/windows/xml.ts";
import { holdDisplay, startXvfb } from "./harness/xvfb.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** The path of `bin`, or a loud failure naming the Debian package that has it. */
async function tool(bin: string, pkg: string): Promise<string> {
  const r = await new Deno.Command("sh", { args: ["-c", `command -v ${bin}`] }).output();
  if (!r.success) {
    throw new Error(
      `${bin} is not installed: run "deno run -A tests/setup.ts" as root, or "apt-get install ${pkg}".`,
    );
  }
  return decode(r.stdout).trim();
}

async function exec(
  cmd: string,
  args: string[],
  o: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, cwd: o.cwd ?? ROOT, env: o.env, stdin: "null" })
    .output();
  return { code: r.code, out: decode(r.stdout), err: decode(r.stderr) };
}

/** `deno task package` as the workflow runs it, from this checkout. */
const packageCli = (args: string[], env?: Record<string, string>) =>
  exec(Deno.execPath(), ["run", "-A", "packaging/package.ts", ...args], { env });

/** A stub program: a shell script that prints its $0, APPIMAGE, and arguments, then exits 7. */
async function stubProgram(dir: string): Promise<string> {
  const path = `${dir}/stub`;
  await Deno.writeTextFile(
    path,
    '#!/bin/sh\nprintf "%s\\n" "$0" "${APPIMAGE-unset}" "$#"\n' +
      'for a in "$@"; do printf "[%s]\\n" "$a"; done\nexit 7\n',
  );
  await Deno.chmod(path, 0o755);
  return path;
}

async function isExecutable(path: string): Promise<boolean> {
  const s = await Deno.stat(path);
  return s.isFile && ((s.mode ?? 0) & 0o111) === 0o111;
}

async function withTemp(prefix: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const isPng = (b: Uint8Array) => PNG_SIGNATURE.every((x, i) => b[i] === x);

Deno.test("the committed icon PNGs are 8-bit RGBA PNGs of the sizes their names say", async () => {
  for (const size of PNG_SIZES) {
    const png = await Deno.readFile(pngFile(size));
    assertTrue(isPng(png), `phaselock-${size}.png has no PNG signature`);
    assertEquals(pngSize(png), { width: size, height: size }, `phaselock-${size}.png`);
    // IHDR: bit depth 8, colour type 6 (RGBA): the corners around the circles are transparent.
    assertEquals([png[24], png[25]], [8, 6], `phaselock-${size}.png is not 8-bit RGBA`);
  }
});

Deno.test("the committed .icns is what the writer makes from the PNGs: header, PNG elements ic07-ic14, each its size", async () => {
  const file = await Deno.readFile(ICNS_FILE);
  assertEquals(
    file,
    (await iconContainers()).icns,
    "phaselock.icns is stale: run packaging/icons.ts",
  );
  assertEquals(decode(file.subarray(0, 4)), "icns");
  assertEquals(new DataView(file.buffer).getUint32(4), file.length, "length in the header");
  const elements = readIcns(file);
  assertEquals(elements.map((e) => e.type).sort(), Object.keys(ICNS_TYPES).sort());
  let at = 8;
  for (const { type, png } of elements) {
    // The element's own header, read from the raw bytes: type, then big-endian length.
    assertEquals(decode(file.subarray(at, at + 4)), type);
    assertEquals(new DataView(file.buffer).getUint32(at + 4), png.length + 8, `${type} length`);
    assertTrue(isPng(png), `${type} does not hold a PNG`);
    const want = ICNS_TYPES[type as keyof typeof ICNS_TYPES];
    assertEquals(pngSize(png), { width: want, height: want }, type);
    assertEquals(png, await Deno.readFile(pngFile(want)), `${type} is phaselock-${want}.png`);
    at += png.length + 8;
  }
  assertEquals(at, file.length, "the elements fill the file exactly");
});

Deno.test("the committed .ico is what the writer makes from the PNGs: header, directory, PNG images 16-256", async () => {
  const file = await Deno.readFile(ICO_FILE);
  assertEquals(
    file,
    (await iconContainers()).ico,
    "phaselock.ico is stale: run packaging/icons.ts",
  );
  const v = new DataView(file.buffer);
  assertEquals([v.getUint16(0, true), v.getUint16(2, true)], [0, 1], "reserved 0, type 1 (icon)");
  assertEquals(v.getUint16(4, true), ICO_SIZES.length, "image count");
  const images = readIco(file);
  let expectedOffset = 6 + 16 * ICO_SIZES.length;
  images.forEach((img, i) => {
    const size = ICO_SIZES[i];
    const e = 6 + 16 * i;
    assertEquals([file[e], file[e + 1]], size === 256 ? [0, 0] : [size, size], `entry ${i}`);
    assertEquals([file[e + 2], file[e + 3]], [0, 0], "no palette, reserved 0");
    assertEquals([img.planes, img.bitCount], [1, 32], `entry ${i} planes and bit count`);
    assertEquals(v.getUint32(e + 12, true), expectedOffset, `entry ${i} offset`);
    assertTrue(isPng(img.png), `image ${i} is not a PNG`);
    assertEquals(pngSize(img.png), { width: size, height: size }, `image ${i}`);
    expectedOffset += img.png.length;
  });
  assertEquals(expectedOffset, file.length, "the images fill the file exactly");
});

Deno.test("the icon writers refuse wrong sizes and non-PNGs, and the readers refuse broken files", async () => {
  const png32 = await Deno.readFile(pngFile(32));
  assertThrows(() => writeIcns([{ type: "ic07", png: png32 }]), /ic07 icon must be 128x128/);
  assertThrows(() => writeIco([Deno.readFileSync(pngFile(512))]), /at most 256 px/);
  assertThrows(() => pngSize(new TextEncoder().encode("GIF89a and more bytes here")), /Not a PNG/);
  const icns = writeIcns([{ type: "ic11", png: png32 }]);
  assertThrows(() => readIcns(icns.subarray(0, icns.length - 1)), /header says/);
  assertThrows(() => readIco(new Uint8Array([0, 0, 2, 0, 1, 0])), /Not an \.ico/);
  assertThrows(() => readIco(writeIco([png32]).subarray(0, 30)), /runs past the end/);
});

Deno.test({
  name: "the Linux AppDir: desktop-file-validate accepts its entry, and AppRun runs the program " +
    "with the arguments as given and APPIMAGE kept, even through a link",
  ...opts,
  fn: () =>
    withTemp("phaselock-appdir-", async (tmp) => {
      const validate = await tool("desktop-file-validate", "desktop-file-utils");
      const stub = await stubProgram(tmp);
      const target = "x86_64-unknown-linux-gnu";
      const r = await packageCli([
        "--target",
        target,
        "--bin",
        stub,
        "--out",
        tmp,
        "--layout-only",
      ]);
      assertEquals(r.code, 0, r.err);
      const dir = `${tmp}/package-${target}/PhaseLock.AppDir`;

      // The layout appimagetool expects.
      assertTrue(await isExecutable(`${dir}/AppRun`), "AppRun is not executable");
      assertTrue(await isExecutable(`${dir}/usr/bin/phaselock`), "the program is not executable");
      assertEquals(await Deno.readFile(`${dir}/usr/bin/phaselock`), await Deno.readFile(stub));
      assertEquals(await Deno.readLink(`${dir}/.DirIcon`), "phaselock.png");
      const icon = await Deno.readFile(pngFile(256));
      assertEquals(await Deno.readFile(`${dir}/phaselock.png`), icon);
      assertEquals(
        await Deno.readFile(`${dir}/usr/share/icons/hicolor/256x256/apps/phaselock.png`),
        icon,
      );
      const desktop = `${APP.id}.desktop`;
      const entry = await Deno.readTextFile(`${dir}/${desktop}`);
      assertEquals(await Deno.readTextFile(`${dir}/usr/share/applications/${desktop}`), entry);

      // The entry: valid (desktop-file-validate prints nothing) and holding the app's values.
      for (const f of [`${dir}/${desktop}`, `${dir}/usr/share/applications/${desktop}`]) {
        const v = await exec(validate, [f]);
        assertEquals([v.code, v.out + v.err], [0, ""], `desktop-file-validate ${f}`);
      }
      const keys = Object.fromEntries(
        entry.split("\n").filter((l) => l.includes("=")).map((l) => l.split(/=(.*)/s).slice(0, 2)),
      );
      assertEquals(entry.split("\n")[0], "[Desktop Entry]");
      assertEquals(keys, {
        Type: "Application",
        Name: APP.name,
        Comment: APP.summary,
        Exec: "phaselock",
        Icon: "phaselock",
        Categories: "AudioVideo;Audio;Player;",
        Terminal: "false",
        "X-AppImage-Version": VERSION,
      });

      // AppRun as the AppImage runtime starts it, and through a link elsewhere.
      await Deno.symlink(`${dir}/AppRun`, `${tmp}/linked-AppRun`);
      const args = ["two words", "", "*", "--flag=$HOME", "ü"];
      for (const appRun of [`${dir}/AppRun`, `${tmp}/linked-AppRun`]) {
        const env = { APPIMAGE: `${tmp}/Apps/PhaseLock-${VERSION}-x86_64.AppImage` };
        const run = await exec(appRun, args, { cwd: tmp, env });
        assertEquals(run.code, 7, `AppRun passes the program's exit code on (${run.err})`);
        assertEquals(run.out.split("\n"), [
          await Deno.realPath(`${dir}/usr/bin/phaselock`),
          env.APPIMAGE,
          String(args.length),
          ...args.map((a) => `[${a}]`),
          "",
        ]);
      }
      // Without APPIMAGE (the AppDir run directly) AppRun invents none.
      const bare = await exec("env", ["-u", "APPIMAGE", `${dir}/AppRun`]);
      assertEquals(bare.out.split("\n").slice(1, 3), ["unset", "0"]);

      // appimagetool is missing here: one sentence naming it, exit code 1.
      const noTool = await packageCli(["--target", target, "--bin", stub, "--out", tmp], {
        PATH: tmp,
      });
      assertEquals(noTool.code, 1);
      assertTrue(
        /^appimagetool is not on PATH, so the AppImage cannot be built here .*--layout-only\)\.\n$/
          .test(noTool.err),
        noTool.err,
      );
    }),
});

Deno.test({
  name: "the macOS bundle: Info.plist and the entitlements parse and hold the app's values; the " +
    ".app is laid out around the program",
  ...opts,
  fn: () =>
    withTemp("phaselock-app-", async (tmp) => {
      const stub = await stubProgram(tmp);
      const target = "aarch64-apple-darwin";
      const r = await packageCli([
        "--target",
        target,
        "--bin",
        stub,
        "--out",
        tmp,
        "--layout-only",
      ]);
      assertEquals(r.code, 0, r.err);
      const app = `${tmp}/package-${target}/PhaseLock.app/Contents`;
      assertTrue(await isExecutable(`${app}/MacOS/phaselock`), "the program is not executable");
      assertEquals(await Deno.readFile(`${app}/MacOS/phaselock`), await Deno.readFile(stub));
      assertEquals(
        await Deno.readFile(`${app}/Resources/phaselock.icns`),
        await Deno.readFile(ICNS_FILE),
      );
      assertEquals(await Deno.readTextFile(`${app}/PkgInfo`), "APPL????");

      const info = parsePlist(await Deno.readTextFile(`${app}/Info.plist`)) as Record<
        string,
        unknown
      >;
      const want: Record<string, unknown> = {
        CFBundleExecutable: "phaselock",
        CFBundleIdentifier: APP.id,
        CFBundleName: APP.name,
        CFBundlePackageType: "APPL",
        CFBundleShortVersionString: VERSION,
        CFBundleVersion: VERSION,
        CFBundleIconFile: "phaselock.icns",
        LSMinimumSystemVersion: "11.0",
        NSHighResolutionCapable: true,
        LSApplicationCategoryType: "public.app-category.music",
        NSBonjourServices: ["_phaselock._tcp"],
      };
      for (const [k, v] of Object.entries(want)) assertEquals(info[k], v, `Info.plist ${k}`);
      for (const k of ["NSMicrophoneUsageDescription", "NSLocalNetworkUsageDescription"]) {
        assertTrue(
          typeof info[k] === "string" && /PhaseLock .{20,}\.$/.test(info[k] as string),
          `Info.plist ${k} should be a sentence: ${info[k]}`,
        );
      }
      // The icon file it names is in Resources.
      await Deno.stat(`${app}/Resources/${info.CFBundleIconFile}`);

      const ent = parsePlist(
        await Deno.readTextFile(new URL("../packaging/macos/entitlements.plist", import.meta.url)),
      );
      assertEquals(ent, {
        "com.apple.security.cs.allow-jit": true,
        "com.apple.security.cs.allow-unsigned-executable-memory": true,
        "com.apple.security.cs.disable-library-validation": true,
        "com.apple.security.device.audio-input": true,
      });

      // The .dmg needs macOS: one sentence, exit code 1.
      const noDmg = await packageCli(["--target", target, "--bin", stub, "--out", tmp]);
      assertEquals(noDmg.code, 1);
      assertTrue(/^The \.dmg is built only on macOS .*\.\n$/.test(noDmg.err), noDmg.err);
    }),
});

/** One msiinfo table as rows of named columns. */
async function msiTable(msiinfo: string, msi: string, table: string) {
  const r = await exec(msiinfo, ["export", msi, table]);
  assertEquals(r.code, 0, `msiinfo export ${table}: ${r.err}`);
  const [head, , , ...rows] = r.out.split(/\r?\n/).filter(Boolean);
  const cols = head.split("\t");
  return rows.map((l) => Object.fromEntries(l.split("\t").map((v, i) => [cols[i], v])));
}

Deno.test({
  name: "the Windows installer built by wixl: Property, File, Shortcut, Component, Directory and " +
    "Upgrade tables hold the product, the fixed upgrade code, the program and its Start-menu shortcut",
  ...opts,
  fn: () =>
    withTemp("phaselock-msi-", async (tmp) => {
      await tool("wixl", "wixl");
      const msiinfo = await tool("msiinfo", "msitools");
      const exe = `${tmp}/phaselock-x86_64-pc-windows-msvc.exe`;
      await Deno.writeFile(exe, new TextEncoder().encode("MZ stub program for the MSI test"));
      // No --bin: the default is the compiled program's name in --out, as in the workflow.
      const r = await packageCli(["--target", "x86_64-pc-windows-msvc", "--out", tmp]);
      assertEquals(r.code, 0, r.err);
      const msi = `${tmp}/PhaseLock-${VERSION}-x64.msi`;
      const size = (await Deno.stat(msi)).size;
      console.log(`MSI around a ${(await Deno.stat(exe)).size}-byte stub: ${size} bytes`);
      assertTrue(/^Installer: .*\.msi \(/m.test(r.out), r.out);

      const props = Object.fromEntries(
        (await msiTable(msiinfo, msi, "Property")).map((p) => [p.Property, p.Value]),
      );
      assertEquals(props.ProductName, APP.name);
      assertEquals(props.ProductVersion, VERSION);
      assertEquals(props.Manufacturer, APP.name);
      assertEquals(props.UpgradeCode, `{${UPGRADE_CODE}}`);
      assertEquals(props.ALLUSERS, "1", "per-machine");
      assertEquals(props.ARPPRODUCTICON, "phaselock.ico");
      assertTrue(/^\{[0-9A-F-]{36}\}$/.test(props.ProductCode), props.ProductCode);

      assertEquals(await msiTable(msiinfo, msi, "File"), [{
        File: "PhaseLockExe",
        Component_: "Program",
        FileName: "phaselock.exe",
        FileSize: String((await Deno.stat(exe)).size),
        Version: "",
        Language: "",
        Attributes: "512",
        Sequence: "1",
      }]);
      const [shortcut, ...more] = await msiTable(msiinfo, msi, "Shortcut");
      assertEquals(more.length, 0);
      assertEquals(
        [shortcut.Directory_, shortcut.Name, shortcut.Component_, shortcut.Target],
        ["ProgramMenuFolder", APP.name, "Program", "[#PhaseLockExe]"],
      );
      assertEquals([shortcut.Description, shortcut.Icon_], [APP.summary, "phaselock.ico"]);
      const [component] = await msiTable(msiinfo, msi, "Component");
      assertEquals(component.Directory_, "INSTALLFOLDER");
      assertEquals(component.KeyPath, "PhaseLockExe");
      assertEquals(Number(component.Attributes) & 256, 256, "a 64-bit component");
      const dirs = Object.fromEntries(
        (await msiTable(msiinfo, msi, "Directory")).map((d) => [d.Directory, d]),
      );
      assertEquals(dirs.INSTALLFOLDER.Directory_Parent, "ProgramFiles64Folder");
      assertEquals(dirs.INSTALLFOLDER.DefaultDir, APP.name);
      // MajorUpgrade: a row finding older versions, one refusing a downgrade, and the removal.
      const upgrade = await msiTable(msiinfo, msi, "Upgrade");
      assertEquals(
        upgrade.map((u) => [u.UpgradeCode, u.ActionProperty]).sort(),
        [
          [`{${UPGRADE_CODE}}`, "WIX_DOWNGRADE_DETECTED"],
          [`{${UPGRADE_CODE}}`, "WIX_UPGRADE_DETECTED"],
        ],
      );
      const sequence = (await msiTable(msiinfo, msi, "InstallExecuteSequence")).map((s) =>
        s.Action
      );
      for (const a of ["FindRelatedProducts", "RemoveExistingProducts", "CreateShortcuts"]) {
        assertTrue(sequence.includes(a), `InstallExecuteSequence lacks ${a}`);
      }
      const summary = await exec(msiinfo, ["suminfo", msi]);
      assertTrue(/^Template: x64;1033$/m.test(summary.out), summary.out);
    }),
});

Deno.test({
  name: "the WiX v4 source is well-formed and says what the wixl one says: product, fixed " +
    "upgrade code, MajorUpgrade, per-machine Program Files, the program and its shortcut",
  ...opts,
  fn: () =>
    withTemp("phaselock-wxs-", async (tmp) => {
      const exe = `${tmp}/phaselock.exe`;
      await Deno.writeTextFile(exe, "MZ");
      const target = "x86_64-pc-windows-msvc";
      const r = await packageCli(["--target", target, "--bin", exe, "--out", tmp, "--layout-only"]);
      assertEquals(r.code, 0, r.err);
      const stage = `${tmp}/package-${target}`;
      assertEquals(
        (await Array.fromAsync(Deno.readDir(stage))).map((e) => e.name).sort(),
        ["phaselock-wixl.wxs", "phaselock.exe", "phaselock.ico", "phaselock.wxs"],
      );
      const v4 = parseXml(await Deno.readTextFile(`${stage}/phaselock.wxs`));
      const v3 = parseXml(await Deno.readTextFile(`${stage}/phaselock-wixl.wxs`));
      assertEquals(v4.attrs.xmlns, "http://wixtoolset.org/schemas/v4/wxs");
      assertEquals(v3.attrs.xmlns, "http://schemas.microsoft.com/wix/2006/wi");
      const one = (root: XmlElement, name: string) => {
        const all = findAll(root, name);
        assertEquals(all.length, 1, `one <${name}>`);
        return all[0];
      };

      const pkg = one(v4, "Package");
      assertEquals(pkg.attrs, {
        Name: APP.name,
        Manufacturer: APP.name,
        Version: VERSION,
        UpgradeCode: "{978A4E9F-5979-47D7-A304-508A24201A6A}",
        Language: "1033",
        Scope: "perMachine",
        Compressed: "yes",
      });
      const product = one(v3, "Product");
      for (const k of ["Name", "Manufacturer", "Version", "UpgradeCode", "Language"]) {
        assertEquals(product.attrs[k], pkg.attrs[k], `v3 Product ${k}`);
      }
      assertEquals(one(v3, "Package").attrs.InstallScope, "perMachine");

      for (const root of [v4, v3]) {
        assertTrue(one(root, "MajorUpgrade").attrs.DowngradeErrorMessage.includes(APP.name));
        const program = findAll(root, "Directory").find((d) => d.attrs.Id === "INSTALLFOLDER")!;
        assertEquals(program.attrs.Name, APP.name);
        const file = one(program, "File");
        assertEquals(file.attrs, {
          Id: "PhaseLockExe",
          Name: "phaselock.exe",
          Source: "phaselock.exe",
          KeyPath: "yes",
        });
        const sc = one(program, "Shortcut");
        assertEquals(
          [sc.attrs.Directory, sc.attrs.Name, sc.attrs.Target, sc.attrs.Icon],
          ["ProgramMenuFolder", APP.name, "[#PhaseLockExe]", "phaselock.ico"],
        );
        assertEquals(one(root, "Icon").attrs.SourceFile, "phaselock.ico");
        assertEquals(one(root, "ComponentRef").attrs.Id, one(program, "Component").attrs.Id);
      }
      // Program Files (64-bit) holds the install folder in both dialects.
      const pf4 = findAll(v4, "StandardDirectory").find((d) =>
        d.attrs.Id === "ProgramFiles64Folder"
      );
      assertEquals(pf4?.children[0].attrs.Id, "INSTALLFOLDER");
      const pf3 = findAll(v3, "Directory").find((d) => d.attrs.Id === "ProgramFiles64Folder");
      assertEquals(pf3?.children[0].attrs.Id, "INSTALLFOLDER");

      // The reader is strict: it would notice a broken rendering.
      for (
        const bad of ['<a b="1" b="2"/>', "<a><b></a>", "<a>text</a>", "<a/><b/>", '<a b="<"/>']
      ) {
        assertThrows(() => parseXml(bad), /Not well-formed XML/);
      }
    }),
});

Deno.test({
  name: "the smoke test passes against the app run from source: --version, then a host and a " +
    "peer on loopback playing the demo track, both quitting with code 0",
  ...opts,
  async fn() {
    const deno = /\s/.test(Deno.execPath()) ? "deno" : Deno.execPath();
    const t0 = performance.now();
    const r = await exec(Deno.execPath(), [
      ...["run", "-A", "packaging/smoke.ts", "--bin", `${deno} run -A main.ts`],
    ]);
    const lines = r.out.trim().split("\n");
    console.log(`${lines.at(-1)} (${((performance.now() - t0) / 1000).toFixed(1)} s in all)`);
    assertEquals(r.code, 0, r.err.slice(-2000));
    const figures = JSON.parse(lines.at(-2)!);
    assertEquals(figures.type, "smoke");
    assertTrue(figures.version.startsWith(`PhaseLock ${VERSION} `), figures.version);
    for (const k of ["msToVersion", "msHostReady", "msHostToPeerPlaying"]) {
      assertTrue(Number.isFinite(figures[k]) && figures[k] >= 0, `${k}: ${figures[k]}`);
    }
    assertTrue(/^Smoke test passed: /.test(lines.at(-1)!), lines.at(-1));

    // A program that cannot start is one sentence and exit code 1.
    const missing = await exec(Deno.execPath(), [
      ...["run", "-A", "packaging/smoke.ts", "--bin", "/nonexistent/phaselock"],
    ]);
    assertEquals(missing.code, 1);
    assertTrue(/^Smoke test failed: \/nonexistent\/phaselock cannot be started/.test(missing.err));
  },
});

Deno.test({
  name: "the smoke test's window part passes against the app run from source under Xvfb: the " +
    "window opens and the app quits with code 0 when its UI sends quit",
  ...opts,
  async fn() {
    const x = await startXvfb({ screen: "1280x800x24" });
    // Xvfb resets when its last client leaves, which can catch the app between its display
    // probe and GTK's connection (see app_window_test.ts); a desktop always has other clients.
    const hold = holdDisplay(x.display);
    try {
      const deno = /\s/.test(Deno.execPath()) ? "deno" : Deno.execPath();
      const r = await exec(Deno.execPath(), [
        ...["run", "-A", "packaging/smoke.ts", "--bin", `${deno} run -A main.ts`, "--window"],
      ], { env: { DISPLAY: x.display, GDK_BACKEND: "x11" } });
      const lines = r.out.trim().split("\n");
      console.log(lines.at(-1));
      assertEquals(r.code, 0, r.err.slice(-2000));
      const figures = JSON.parse(lines.at(-2)!);
      for (const k of ["msToWindow", "msWindowQuit"]) {
        assertTrue(Number.isFinite(figures[k]) && figures[k] >= 0, `${k}: ${figures[k]}`);
      }
      assertTrue(/the window opened in \d+ ms and quit cleanly\.$/.test(lines.at(-1)!));
    } finally {
      hold.close();
      await x.stop();
    }
  },
});

/** Every `run:` script of every job in the workflow. */
function runScripts(workflow: { jobs: Record<string, { steps: { run?: string }[] }> }): string[] {
  return Object.values(workflow.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ""));
}

Deno.test("the release workflow parses, builds the four targets on their runners, calls only tasks deno.json has and scripts the repository has", async () => {
  const text = await Deno.readTextFile(`${ROOT}.github/workflows/release.yml`);
  // deno-lint-ignore no-explicit-any
  const wf = parseYaml(text) as any;
  assertEquals(wf.on.push.tags, ["v*"]);
  assertTrue("workflow_dispatch" in wf.on, "it can be run by hand");

  const build = wf.jobs.build;
  const matrix = build.strategy.matrix.include as { os: string; target: string }[];
  assertEquals(
    Object.fromEntries(matrix.map((m) => [m.target, m.os])),
    {
      "x86_64-unknown-linux-gnu": "ubuntu-22.04",
      "aarch64-apple-darwin": "macos-14",
      "x86_64-apple-darwin": "macos-13",
      "x86_64-pc-windows-msvc": "windows-latest",
    },
  );
  assertEquals(matrix.map((m) => m.target).sort(), Object.keys(TARGETS).sort());
  const setup = build.steps.find((s: { uses?: string }) =>
    s.uses?.startsWith("denoland/setup-deno")
  );
  assertEquals([setup?.uses, setup?.with?.["deno-version"]], ["denoland/setup-deno@v2", "2.9.6"]);

  const scripts = runScripts(wf);
  const all = scripts.join("\n");
  // The steps that matter, in the order that matters.
  const order = [
    /deno task compile --target "\$TARGET"/,
    /deno task smoke --bin "\$BIN"$/m,
    /xvfb-run .*\n?.*deno task smoke --bin "\$BIN" --window/,
    /deno task package --target "\$TARGET"/,
  ].map((re) => scripts.findIndex((s) => re.test(s)));
  assertTrue(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), `steps: ${order}`);
  assertTrue(/GITHUB_REF_NAME" != "v\$version"/.test(all), "the tag is checked against VERSION");
  assertTrue(/app\/version\.ts/.test(all), "VERSION is read from app/version.ts");
  assertTrue(/appimagetool-x86_64\.AppImage/.test(all), "appimagetool is downloaded");
  assertTrue(/dotnet tool install --global wix/.test(all), "WiX is installed");
  assertTrue(/gh release upload/.test(all), "the files are attached to the release");
  assertEquals(wf.jobs.release.permissions, { contents: "write" });
  assertEquals(wf.jobs.release.needs, "build");

  // Every `deno task X` is a task of deno.json, and each task's script exists.
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  const called = [...all.matchAll(/deno task ([\w:-]+)/g)].map((m) => m[1]);
  assertEquals([...new Set(called)].sort(), ["compile", "package", "smoke"]);
  for (const t of called) {
    assertTrue(t in tasks, `deno task ${t} is not in deno.json`);
    for (const script of tasks[t].match(/[\w./-]+\.ts/g) ?? []) {
      await Deno.stat(`${ROOT}${script}`).catch(() => {
        throw new Error(`deno task ${t} runs ${script}, which does not exist`);
      });
    }
  }
  // Every repository path the workflow names exists (dist/ is what the build makes).
  const paths = [...text.matchAll(/(?<![\w/$.-])\.?\/?((?:[\w.-]+\/)+[\w.-]+\.(?:ts|md|json))/g)]
    .map((m) => m[1]).filter((p) => !p.startsWith("dist/"));
  assertTrue(paths.includes("app/version.ts"), `paths found: ${paths}`);
  for (const p of paths) {
    await Deno.stat(`${ROOT}${p}`).catch(() => {
      throw new Error(`the workflow names ${p}, which is not in the repository`);
    });
  }
});
