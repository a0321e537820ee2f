import { assertEquals, assertTrue } from "../tests/assert.ts";
import { delayProblem, SettingsStore } from "./device_settings.ts";

Deno.test("speaker settings are remembered per output device", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new SettingsStore(`${dir}/sub/settings.json`);
    assertEquals(await store.load("pulse:bt-speaker"), {}, "nothing remembered yet");
    await store.save("pulse:bt-speaker", { speakerDelayMs: 180, channel: "left" });
    await store.save("pulse:laptop", { speakerDelayMs: 0, channel: "stereo" });
    const again = new SettingsStore(`${dir}/sub/settings.json`);
    assertEquals(await again.load("pulse:bt-speaker"), { speakerDelayMs: 180, channel: "left" });
    assertEquals(await again.load("pulse:laptop"), { speakerDelayMs: 0, channel: "stereo" });
    // A hand-edited file with nonsense in it gives defaults for the bad fields only.
    await Deno.writeTextFile(
      `${dir}/sub/settings.json`,
      '{"devices":{"x":{"speakerDelayMs":9000,"channel":"left"}}}',
    );
    assertEquals(await again.load("x"), { channel: "left" });
    await Deno.writeTextFile(`${dir}/sub/settings.json`, "not json");
    assertEquals(await again.load("x"), {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("speaker delay is limited to 0–500 ms", () => {
  assertEquals(delayProblem(0), null);
  assertEquals(delayProblem(500), null);
  for (const bad of [-1, 501, NaN, Infinity]) assertTrue(delayProblem(bad) !== null, String(bad));
});
