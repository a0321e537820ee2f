import { assertEquals } from "../tests/assert.ts";
import { dataDirs, portableRoot, type Surroundings } from "./data_dirs.ts";

/** A machine described by its OS, environment, executable and the folders that exist. */
function machine(
  os: Surroundings["os"],
  execPath: string,
  opts: { env?: Record<string, string>; dirs?: string[]; compiled?: boolean } = {},
): Surroundings {
  const dirs = new Set(opts.dirs ?? []);
  return {
    os,
    env: (k) => opts.env?.[k],
    execPath,
    compiled: opts.compiled ?? true,
    isDir: (p) => dirs.has(p),
  };
}

Deno.test("a 'PhaseLock Data' folder beside the program makes the run portable, on every OS", () => {
  const usb = "/media/stick/PhaseLock Data";
  assertEquals(portableRoot({}, machine("linux", "/media/stick/phaselock", { dirs: [usb] })), usb);
  assertEquals(portableRoot({}, machine("linux", "/media/stick/phaselock")), null);
  // Inside an AppImage the program runs from a mount; the folder is beside the .AppImage file.
  const appImage = machine("linux", "/tmp/.mount_PhaseXY/usr/bin/phaselock", {
    env: { APPIMAGE: "/media/stick/PhaseLock.AppImage" },
    dirs: [usb],
  });
  assertEquals(portableRoot({}, appImage), usb);
  // macOS: beside PhaseLock.app, not inside it.
  const mac = machine("darwin", "/Volumes/Stick/PhaseLock.app/Contents/MacOS/phaselock", {
    dirs: ["/Volumes/Stick/PhaseLock Data"],
  });
  assertEquals(portableRoot({}, mac), "/Volumes/Stick/PhaseLock Data");
  const win = machine("windows", "E:\\PhaseLock\\phaselock.exe", {
    dirs: ["E:\\PhaseLock\\PhaseLock Data"],
  });
  assertEquals(portableRoot({}, win), "E:\\PhaseLock\\PhaseLock Data");
});

Deno.test("a source run is portable only with --data-dir, which always wins", () => {
  const source = machine("linux", "/usr/bin/deno", {
    compiled: false,
    dirs: ["/usr/bin/PhaseLock Data"],
  });
  assertEquals(portableRoot({}, source), null);
  assertEquals(portableRoot({ "data-dir": "/srv/pl" }, source), "/srv/pl");
  const beside = machine("linux", "/opt/pl/phaselock", { dirs: ["/opt/pl/PhaseLock Data"] });
  assertEquals(portableRoot({ "data-dir": "/srv/pl" }, beside), "/srv/pl");
});

Deno.test("a portable folder holds settings, cache, log and window data; explicit flags win", () => {
  const s = machine("linux", "/usr/bin/deno", { compiled: false, env: { HOME: "/home/u" } });
  const d = dataDirs({ "data-dir": "/p" }, s);
  assertEquals(
    [d.portable, d.config, d.cache("tracks"), d.cache("uploads"), d.log, d.webview],
    [
      "/p",
      "/p/settings",
      "/p/cache/tracks",
      "/p/cache/uploads",
      "/p/logs/phaselock.log",
      "/p/webview",
    ],
  );
  const mixed = dataDirs({ "data-dir": "/p", "config-dir": "/c", "cache-dir": "/k" }, s);
  assertEquals(
    [mixed.config, mixed.cache("tracks"), mixed.cache("requests"), mixed.log],
    ["/c", "/k", "/k/requests", "/p/logs/phaselock.log"],
  );
});

Deno.test("installed, each OS keeps its data in its usual folders", () => {
  const linux = dataDirs({}, machine("linux", "/usr/bin/phaselock", { env: { HOME: "/home/u" } }));
  assertEquals(
    [linux.portable, linux.config, linux.cache("tracks"), linux.log, linux.webview],
    [
      null,
      "/home/u/.config/phaselock",
      "/home/u/.cache/phaselock/tracks",
      "/home/u/.local/state/phaselock/phaselock.log",
      null,
    ],
  );
  const xdg = dataDirs(
    {},
    machine("linux", "/usr/bin/phaselock", {
      env: {
        HOME: "/home/u",
        XDG_CONFIG_HOME: "/x/c",
        XDG_CACHE_HOME: "/x/k",
        XDG_STATE_HOME: "/x/s",
      },
    }),
  );
  assertEquals(
    [xdg.config, xdg.cache("requests"), xdg.log],
    ["/x/c/phaselock", "/x/k/phaselock/requests", "/x/s/phaselock/phaselock.log"],
  );
  const mac = dataDirs(
    {},
    machine("darwin", "/Applications/PhaseLock.app/Contents/MacOS/pl", {
      env: { HOME: "/Users/u" },
    }),
  );
  assertEquals(
    [mac.config, mac.cache("tracks"), mac.log],
    [
      "/Users/u/Library/Application Support/PhaseLock",
      "/Users/u/Library/Caches/PhaseLock/tracks",
      "/Users/u/Library/Logs/PhaseLock/phaselock.log",
    ],
  );
  const win = dataDirs(
    {},
    machine("windows", "C:\\Program Files\\PhaseLock\\phaselock.exe", {
      env: { USERPROFILE: "C:\\Users\\u", APPDATA: "C:\\A", LOCALAPPDATA: "C:\\L" },
    }),
  );
  assertEquals(
    [win.config, win.cache("uploads"), win.log],
    ["C:\\A\\PhaseLock", "C:\\L\\PhaseLock\\uploads", "C:\\L\\PhaseLock\\Logs\\phaselock.log"],
  );
});
