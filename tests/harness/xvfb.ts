/**
 * A private X server for window tests: Xvfb on a free display number, screenshots of its
 * root window with ImageMagick's `import`, and a pixel-share helper that decodes through
 * ImageMagick's `convert` (raw RGB on stdout), so tests need no PNG decoder.
 */
export interface PrivateDisplay {
  /** The `DISPLAY` value for clients, e.g. `":93"`. */
  display: string;
  /** Stops this Xvfb (by its own pid) and waits for it to exit. */
  stop(): Promise<void>;
}

export interface XvfbOptions {
  /** Screen geometry, `WxHxDepth`. Default `1280x800x24`. */
  screen?: string;
  /** Display numbers to try, in order. Default 90..99. */
  displays?: number[];
}

/** Starts Xvfb on the first display number in 90..99 whose socket and lock file are absent. */
export async function startXvfb(opts: XvfbOptions = {}): Promise<PrivateDisplay> {
  await requireTool("Xvfb", "xvfb");
  const screen = opts.screen ?? "1280x800x24";
  const candidates = opts.displays ?? Array.from({ length: 10 }, (_, i) => 90 + i);
  for (const n of candidates) {
    if (await exists(`/tmp/.X11-unix/X${n}`) || await exists(`/tmp/.X${n}-lock`)) continue;
    const child = new Deno.Command("Xvfb", {
      args: [`:${n}`, "-screen", "0", screen, "-nolisten", "tcp"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = collect(child.stderr);
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    // Xvfb is ready once its socket exists; it exits at once if another server won the race.
    const deadline = Date.now() + 10_000;
    while (!exited && !(await exists(`/tmp/.X11-unix/X${n}`)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    if (exited) continue;
    if (!(await exists(`/tmp/.X11-unix/X${n}`))) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`Xvfb on :${n} did not create its socket within 10 s: ${await stderr}`);
    }
    return {
      display: `:${n}`,
      async stop() {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch { /* already gone */ }
        }
        const t = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, 3000);
        await status;
        clearTimeout(t);
        await stderr;
      },
    };
  }
  throw new Error(
    `Cannot start Xvfb: displays :${candidates[0]}..:${
      candidates.at(-1)
    } are all taken or failed to start.`,
  );
}

/** Saves a PNG of the whole screen of `display` to `path` (ImageMagick `import -window root`). */
export async function screenshot(display: string, path: string): Promise<void> {
  await requireTool("import", "imagemagick");
  const out = await new Deno.Command("import", {
    args: ["-display", display, "-window", "root", `png:${path}`],
    env: { DISPLAY: display },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot take a screenshot of ${display}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/** Decodes an image file to 8-bit RGB triples via ImageMagick `convert … rgb:-`. */
export async function readRgb(
  path: string,
): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  await requireTool("convert", "imagemagick");
  const size = await new Deno.Command("identify", {
    args: ["-format", "%w %h", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!size.success) {
    throw new Error(`Cannot read image "${path}": ${new TextDecoder().decode(size.stderr).trim()}`);
  }
  const [width, height] = new TextDecoder().decode(size.stdout).trim().split(" ").map(Number);
  const out = await new Deno.Command("convert", {
    args: [path, "-alpha", "off", "-depth", "8", "rgb:-"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success || out.stdout.length !== width * height * 3) {
    throw new Error(
      `Cannot decode image "${path}" to RGB (${out.stdout.length} bytes for ${width}x${height}): ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return { width, height, rgb: out.stdout };
}

/**
 * Fraction (0..1) of the pixels of `pngPath` whose every channel is within `tolerance`
 * (0..255) of `hex` (`"#1DB954"` or `"1db954"`).
 */
export async function colorShare(pngPath: string, hex: string, tolerance = 8): Promise<number> {
  const { rgb } = await readRgb(pngPath);
  const [r, g, b] = parseHex(hex);
  let hits = 0;
  const n = rgb.length / 3;
  for (let i = 0; i < rgb.length; i += 3) {
    if (
      Math.abs(rgb[i] - r) <= tolerance && Math.abs(rgb[i + 1] - g) <= tolerance &&
      Math.abs(rgb[i + 2] - b) <= tolerance
    ) hits++;
  }
  return n === 0 ? 0 : hits / n;
}

/** Number of distinct colours in the image: 1 means a blank screen. */
export async function distinctColors(pngPath: string): Promise<number> {
  const { rgb } = await readRgb(pngPath);
  const seen = new Set<number>();
  for (let i = 0; i < rgb.length; i += 3) seen.add((rgb[i] << 16) | (rgb[i + 1] << 8) | rgb[i + 2]);
  return seen.size;
}

function parseHex(hex: string): [number, number, number] {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new TypeError(`Not a #rrggbb colour: "${hex}"`);
  return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
}

async function requireTool(cmd: string, pkg: string): Promise<void> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    if (dir && await exists(`${dir}/${cmd}`)) return;
  }
  throw new Error(`Cannot find "${cmd}" on PATH: install it with \`apt-get install -y ${pkg}\`.`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function collect(s: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of s.pipeThrough(new TextDecoderStream())) text += chunk;
  return text.slice(-2000);
}

/**
 * Asks the window titled `title` on `display` to close the way a window manager does when the
 * user clicks its close button: a `WM_PROTOCOLS` / `WM_DELETE_WINDOW` client message (there is
 * no window manager under Xvfb, and `xdotool` 3.2016 cannot send one). Needs `--allow-ffi`.
 * Returns false if no window has that title.
 */
export function requestCloseLikeUser(display: string, title: string): boolean {
  const x = Deno.dlopen("libX11.so.6", {
    XOpenDisplay: { parameters: ["buffer"], result: "pointer" },
    XCloseDisplay: { parameters: ["pointer"], result: "i32" },
    XDefaultRootWindow: { parameters: ["pointer"], result: "u64" },
    XQueryTree: {
      parameters: ["pointer", "u64", "buffer", "buffer", "buffer", "buffer"],
      result: "i32",
    },
    XFetchName: { parameters: ["pointer", "u64", "buffer"], result: "i32" },
    XInternAtom: { parameters: ["pointer", "buffer", "i32"], result: "u64" },
    XSendEvent: { parameters: ["pointer", "u64", "i32", "i64", "buffer"], result: "i32" },
    XFlush: { parameters: ["pointer"], result: "i32" },
    XFree: { parameters: ["pointer"], result: "i32" },
  });
  const cstr = (s: string) => new TextEncoder().encode(s + "\0");
  const dpy = x.symbols.XOpenDisplay(cstr(display));
  if (!dpy) {
    x.close();
    throw new Error(`Cannot connect to X display ${display}.`);
  }
  try {
    const nameOf = (w: bigint): string | null => {
      const out = new BigUint64Array(1);
      if (!x.symbols.XFetchName(dpy, w, out) || out[0] === 0n) return null;
      const p = Deno.UnsafePointer.create(out[0]);
      const name = new Deno.UnsafePointerView(p!).getCString();
      x.symbols.XFree(p);
      return name;
    };
    const find = (w: bigint): bigint | null => {
      if (nameOf(w) === title) return w;
      const root = new BigUint64Array(1), parent = new BigUint64Array(1);
      const kids = new BigUint64Array(1), count = new Uint32Array(1);
      if (!x.symbols.XQueryTree(dpy, w, root, parent, kids, count) || kids[0] === 0n) return null;
      const p = Deno.UnsafePointer.create(kids[0])!;
      const view = new Deno.UnsafePointerView(p);
      const children = Array.from({ length: count[0] }, (_, i) => view.getBigUint64(i * 8));
      x.symbols.XFree(p);
      for (const c of children) {
        const hit = find(c);
        if (hit !== null) return hit;
      }
      return null;
    };
    const win = find(x.symbols.XDefaultRootWindow(dpy));
    if (win === null) return false;
    // XClientMessageEvent, x86_64 layout: type@0, serial@8, send_event@16, display@24,
    // window@32, message_type@40, format@48, data.l[5]@56; XEvent is 192 bytes.
    const ev = new ArrayBuffer(192);
    const dv = new DataView(ev);
    const ClientMessage = 33, NoEventMask = 0n;
    dv.setInt32(0, ClientMessage, true);
    dv.setInt32(16, 1, true);
    dv.setBigUint64(32, win, true);
    dv.setBigUint64(40, x.symbols.XInternAtom(dpy, cstr("WM_PROTOCOLS"), 0), true);
    dv.setInt32(48, 32, true);
    dv.setBigUint64(56, x.symbols.XInternAtom(dpy, cstr("WM_DELETE_WINDOW"), 0), true);
    dv.setBigUint64(64, 0n, true); // CurrentTime
    x.symbols.XSendEvent(dpy, win, 0, NoEventMask, new Uint8Array(ev));
    x.symbols.XFlush(dpy);
    return true;
  } finally {
    x.symbols.XCloseDisplay(dpy);
    x.close();
  }
}

/**
 * Keeps one client connected to `display` until `close()`. Xvfb resets itself whenever its last
 * client disconnects, and a connection attempted during that reset fails: the app probes the
 * display (connect, disconnect) just before GTK connects, so on a loaded machine GTK's connect
 * can land in the reset, tao panics and the app aborts (SIGABRT; measured 4 of 8 launches
 * with the CPUs busy, 0 of 8 with this connection held). A desktop always has other clients.
 */
export function holdDisplay(display: string): { close(): void } {
  const x = Deno.dlopen("libX11.so.6", {
    XOpenDisplay: { parameters: ["buffer"], result: "pointer" },
    XCloseDisplay: { parameters: ["pointer"], result: "i32" },
  });
  const dpy = x.symbols.XOpenDisplay(new TextEncoder().encode(display + "\0"));
  if (!dpy) {
    x.close();
    throw new Error(`Cannot connect to X display ${display}.`);
  }
  let open = true;
  return {
    close() {
      if (!open) return;
      open = false;
      x.symbols.XCloseDisplay(dpy);
      x.close();
    },
  };
}
