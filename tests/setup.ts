/**
 * Makes sure the system parts the tests drive are present: PulseAudio (a private daemon per
 * test), its tools, PortAudio, ALSA's pulse plugin, iproute2 (network namespaces), and sox and
 * lame (test tracks made on the fly). On a fresh Debian/Ubuntu machine, as root, it installs
 * what is missing; otherwise it says exactly what to install. Tests never skip for a missing part: they fail loudly instead.
 */
const PACKAGES = [
  "pulseaudio",
  "pulseaudio-utils",
  "libpulse0",
  "libportaudio2",
  "libasound2-plugins",
  "iproute2",
  // The sync benchmark and the speaker test make their own test tracks.
  "sox",
  "lame",
];

async function has(bin: string): Promise<boolean> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `command -v ${bin}`],
    stdout: "null",
    stderr: "null",
  })
    .output();
  return r.success;
}

async function hasLib(name: string): Promise<boolean> {
  const r = await new Deno.Command("sh", { args: ["-c", `ldconfig -p | grep -q ${name}`] })
    .output();
  return r.success;
}

const missing = !(await has("pulseaudio")) || !(await has("parec")) || !(await has("pactl")) ||
  !(await has("ip")) || !(await has("sox")) || !(await has("lame")) ||
  !(await hasLib("libportaudio.so.2")) || !(await hasLib("libpulse.so.0"));

if (missing) {
  if (Deno.build.os !== "linux" || !(await has("apt-get"))) {
    console.error(`The tests need: ${PACKAGES.join(", ")} (or your system's equivalents).`);
    Deno.exit(1);
  }
  const root = Deno.uid?.() === 0;
  const sudo = root ? [] : ["sudo"];
  console.error(`Installing test dependencies: ${PACKAGES.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const run = async (args: string[]) => {
    const r = await new Deno.Command(sudo[0] ?? args[0], {
      args: sudo.length ? args : args.slice(1),
      env,
    }).spawn().status;
    if (!r.success) {
      console.error(
        `"${args.join(" ")}" failed; install these packages by hand: ${PACKAGES.join(" ")}`,
      );
      Deno.exit(1);
    }
  };
  await run(["apt-get", "update", "-q"]);
  await run(["apt-get", "install", "-y", "-q", "--no-install-recommends", ...PACKAGES]);
}
