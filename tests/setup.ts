/**
 * Makes sure the system parts the tests drive are present: PulseAudio (a private daemon per
 * test), its tools, PortAudio, ALSA's pulse plugin, iproute2 (network namespaces), sox and
 * lame (test tracks made on the fly), and for the browser and window tests Debian's Chromium,
 * Firefox ESR and WebKitGTK's WebDriver, a virtual X server with screenshots, WebKitGTK and a
 * font. On a fresh Debian/Ubuntu machine, as root, it installs what is missing; otherwise it
 * says exactly what to install. Tests never skip for a missing part: they fail loudly instead.
 */

/** Each package, and how to tell it is there without asking the package manager. */
const PACKAGES: { name: string; present: { bin?: string; lib?: string; file?: string } }[] = [
  { name: "pulseaudio", present: { bin: "pulseaudio" } },
  { name: "pulseaudio-utils", present: { bin: "parec" } },
  { name: "libpulse0", present: { lib: "libpulse.so.0" } },
  { name: "libportaudio2", present: { lib: "libportaudio.so.2" } },
  {
    name: "libasound2-plugins",
    present: { file: "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so" },
  },
  { name: "iproute2", present: { bin: "ip" } },
  // The swarm tests serve HTTPS with a throwaway certificate.
  { name: "openssl", present: { bin: "openssl" } },
  // The sync benchmark, the speaker test and assets/make_demo.ts make their own tracks.
  { name: "sox", present: { bin: "sox" } },
  { name: "lame", present: { bin: "lame" } },
  // The benchmark's snapcast scenario: Snapcast's server and client on the same rig as lan.
  { name: "snapserver", present: { bin: "snapserver" } },
  { name: "snapclient", present: { bin: "snapclient" } },
  // Browser peers and the web UI: Debian's Chromium driven by playwright-core.
  { name: "chromium", present: { file: "/usr/bin/chromium" } },
  // Browser peers on the other engines: Firefox ESR (puppeteer-core over WebDriver BiDi) and
  // WebKitGTK's MiniBrowser driven by WebKitWebDriver, which plays WebAudio through GStreamer:
  // without GStreamer's PulseAudio plugin it plays into nothing.
  { name: "firefox-esr", present: { file: "/usr/bin/firefox-esr" } },
  { name: "webkit2gtk-driver", present: { bin: "WebKitWebDriver" } },
  {
    name: "gstreamer1.0-pulseaudio",
    present: { file: "/usr/lib/*/gstreamer-1.0/libgstpulseaudio.so" },
  },
  // The desktop window (WebKitGTK) under a virtual X server, screenshots with `import`.
  { name: "xvfb", present: { bin: "Xvfb" } },
  { name: "xauth", present: { bin: "xauth" } },
  { name: "libwebkit2gtk-4.1-0", present: { lib: "libwebkit2gtk-4.1.so.0" } },
  { name: "imagemagick", present: { bin: "import" } },
  // Without any font, pages render no text and text lookups in screenshots fail.
  {
    name: "fonts-dejavu-core",
    present: { file: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" },
  },
  // Packaging checks: the desktop entry, the MSI built from the installer's source, the
  // architecture diagram drawn from its text.
  { name: "desktop-file-utils", present: { bin: "desktop-file-validate" } },
  { name: "msitools", present: { bin: "msiinfo" } },
  { name: "wixl", present: { bin: "wixl" } },
  { name: "graphviz", present: { bin: "dot" } },
];

async function sh(script: string): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command("sh", { args: ["-c", script], stderr: "null" }).output();
  return { ok: r.success, out: new TextDecoder().decode(r.stdout) };
}

/** One shell for every check, so an up-to-date machine is through in a few milliseconds. */
async function missingPackages(): Promise<string[]> {
  const libs = (await sh("ldconfig -p 2>/dev/null || /sbin/ldconfig -p")).out;
  const checks = PACKAGES.map(({ name, present: p }) =>
    p.lib
      ? `${libs.includes(p.lib) ? "true" : "false"} || echo ${name}`
      : p.bin
      ? `command -v ${p.bin} >/dev/null || echo ${name}`
      : `for f in ${p.file}; do test -e "$f"; done || echo ${name}`
  );
  return (await sh(checks.join("\n"))).out.split("\n").filter(Boolean);
}

const missing = await missingPackages();
if (missing.length) {
  const hasAptGet = (await sh("command -v apt-get")).ok;
  if (Deno.build.os !== "linux" || !hasAptGet) {
    console.error(
      `The tests need these packages (or your system's equivalents): ${missing.join(", ")}.`,
    );
    Deno.exit(1);
  }
  const root = Deno.uid?.() === 0;
  const sudo = root ? [] : ["sudo"];
  console.error(`Installing test dependencies: ${missing.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const run = async (args: string[]) => {
    const r = await new Deno.Command(sudo[0] ?? args[0], {
      args: sudo.length ? args : args.slice(1),
      env,
    }).spawn().status;
    if (!r.success) {
      console.error(
        `"${args.join(" ")}" failed; install these packages by hand: ${missing.join(" ")}`,
      );
      Deno.exit(1);
    }
  };
  await run(["apt-get", "update", "-q"]);
  await run(["apt-get", "install", "-y", "-q", "--no-install-recommends", ...missing]);
  const still = await missingPackages();
  if (still.length) {
    console.error(`Installed, but still not found: ${still.join(", ")}. Install them by hand.`);
    Deno.exit(1);
  }
}
