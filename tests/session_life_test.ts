/**
 * A session's life on loopback with real processes: song requests (accepted, rejected, bad),
 * the host vanishing, transfers cut by the link emulator, and the log file's cap.
 */
import { assertEquals, assertTrue } from "./assert.ts";
import { fixture, hostProcess, peerProcess, rawPeer, rawWait } from "./harness/jam.ts";
import { AppProcess, type Event } from "./harness/proc.ts";
import { makeNoiseMp3 } from "./harness/tracks.ts";
import { sha256Hex } from "../net/transfer.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => performance.timeOrigin + performance.now();

/** Runs `body` with a temporary folder and a list of processes, all cleaned up after. */
async function inJam(prefix: string, body: (tmp: string, procs: AppProcess[]) => Promise<void>) {
  const tmp = await Deno.makeTempDir({ prefix });
  const procs: AppProcess[] = [];
  try {
    await body(tmp, procs);
  } finally {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** The length of the host's queue, asked for now. */
async function queueLength(host: AppProcess): Promise<number> {
  const before = host.count((e) => e.type === "queue");
  await host.send("queue");
  await host.waitFor(() => host.count((e) => e.type === "queue") > before, 5000, "queue");
  return (host.events.findLast((e) => e.type === "queue")!.tracks as unknown[]).length;
}

/** Waits until the first queued track is decoded and ready on every named peer. */
async function readyOn(host: AppProcess, names: string[]) {
  for (const name of names) {
    await host.waitFor((e) => e.type === "track-ready" && e.peer === name, 20000, `${name} ready`);
  }
}

function isRequest(state: string, extra: (e: Event) => boolean = () => true) {
  return (e: Event) => e.type === "request" && e.state === state && extra(e);
}

Deno.test({
  name: "song requests: accepted ones are queued with their tags and reach every peer; " +
    "rejected ones are discarded and the requester is told",
  ...opts,
  fn: () =>
    inJam("phaselock-req-", async (tmp, procs) => {
      const log = `${tmp}/host.log`;
      const { p: host, port } = hostProcess([
        ...["--cache-dir", `${tmp}/host`, "--log-file", log, "--log-max-bytes", "4096"],
        fixture("noise48k.mp3"),
      ]);
      procs.push(host);
      await host.waitFor((e) => e.type === "queue", 20000, "queue");
      const sam = peerProcess(`127.0.0.1:${port}`, "Sam", `${tmp}/sam`);
      const kim = peerProcess(`127.0.0.1:${port}`, "Kim", `${tmp}/kim`);
      procs.push(sam, kim);
      await readyOn(host, ["Sam", "Kim"]);

      // Accepted: the inbox entry names the peer, the file and the tag title.
      await sam.send(`request ${fixture("tagged.mp3")}`);
      const offered = await host.waitFor(isRequest("waiting"), 10000, "inbox entry");
      assertEquals(
        [offered.peer, offered.fileName, offered.title, offered.artist],
        ["Sam", "tagged.mp3", "Night Drive", "The Testers"],
      );
      await host.send("inbox");
      const inbox = await host.waitFor((e) => e.type === "inbox");
      assertEquals((inbox.requests as { id: number }[]).map((r) => r.id), [offered.id]);
      await host.send(`accept ${offered.id}`);
      await sam.waitFor(isRequest("queued"), 15000, "requester told: queued");
      assertTrue(
        sam.events.some((e) => e.type === "request" && e.progress === 1),
        "upload progress",
      );
      const queue = await host.waitFor(
        (e) => e.type === "queue" && (e.tracks as unknown[]).length === 2,
        5000,
        "queue of 2",
      );
      const added = (queue.tracks as Record<string, unknown>[])[1];
      assertEquals(
        [added.position, added.title, added.artist, added.album],
        [2, "Night Drive", "The Testers", "Loopback Sessions"],
      );
      assertEquals((added.cover as { mime: string }).mime, "image/png");
      const cover = await fetch(`http://127.0.0.1:${port}/covers/${added.id}`);
      assertEquals([cover.status, cover.headers.get("content-type")], [200, "image/png"]);
      assertEquals([...new Uint8Array(await cover.arrayBuffer()).subarray(1, 4)], [80, 78, 71]);
      // Distributed like any other track: the next track is ready on both peers.
      await kim.waitFor((e) => e.type === "track-ready" && e.trackId === added.id, 15000, "Kim");
      await sam.waitFor((e) => e.type === "track-ready" && e.trackId === added.id, 15000, "Sam");
      const kimQueue = kim.events.findLast((e) => e.type === "queue")!;
      assertEquals((kimQueue.tracks as { title: string }[]).map((t) => t.title), [
        "noise48k",
        "Night Drive",
      ]);

      // Rejected: the requester hears so, nothing is queued.
      await kim.send(`request ${fixture("tones44k.mp3")}`);
      const second = await host.waitFor(isRequest("waiting", (e) => e.peer === "Kim"), 10000);
      await host.send(`reject ${second.id}`);
      const told = await kim.waitFor(isRequest("rejected"), 10000, "requester told: rejected");
      assertTrue(/declined "tones44k.mp3"/.test(told.reason as string), String(told.reason));
      await host.send(`accept ${second.id}`);
      await host.waitFor(
        (e) => e.type === "error" && /no request \d+ in the inbox/.test(e.message as string),
      );
      assertEquals(await queueLength(host), 2);

      // The log file (cap 4 kB) keeps the newest entries and never passes the cap.
      for (let i = 0; i < 60; i++) await host.send("status");
      await host.waitFor(() => host.count((e) => e.type === "status") >= 60, 10000, "statuses");
      assertEquals((await host.quit()).code, 0);
      const text = await Deno.readTextFile(log);
      assertTrue(text.length <= 4096, `log is ${text.length} bytes`);
      const entries = text.trimEnd().split("\n").map((l) => JSON.parse(l));
      assertEquals(entries[entries.length - 1].type, "quit");
      assertTrue(!entries.some((e) => e.type === "session"), "the oldest entries were dropped");
      assertEquals(entries[0].role, "host");
    }),
});

Deno.test({
  name: "corrupt, oversized and lying requests are refused with a sentence while playback goes on",
  ...opts,
  fn: () =>
    inJam("phaselock-badreq-", async (tmp, procs) => {
      const { p: host, port } = hostProcess([
        ...["--cache-dir", `${tmp}/host`, fixture("noise48k.mp3")],
      ]);
      procs.push(host);
      await host.waitFor((e) => e.type === "queue", 20000, "queue");
      const sam = peerProcess(`127.0.0.1:${port}`, "Sam", `${tmp}/sam`);
      procs.push(sam);
      await readyOn(host, ["Sam"]);
      await host.send("play");
      await sam.waitFor((e) => e.type === "started", 10000, "peer playing");

      // A real peer checks before sending: not an MP3, missing, too big.
      const big = `${tmp}/big.mp3`;
      await Deno.writeFile(big, new Uint8Array(51 * 1024 * 1024));
      for (
        const [path, want] of [
          [fixture("notaudio.mp3"), /Cannot request "notaudio.mp3": .*no MPEG audio/],
          [fixture("nope.mp3"), /Cannot request "nope.mp3": the file does not exist/],
          [big, /Cannot request "big.mp3": the file is 51.0 MB; the limit is 50 MB/],
        ] as const
      ) {
        await sam.send(`request ${path}`);
        await sam.waitFor((e) => e.type === "error" && want.test(e.message as string), 5000, path);
      }

      // A peer that lies: the host refuses by itself.
      const liar = await rawPeer(port, "Liar");
      const send = (m: Record<string, unknown>) => liar.ws.send(JSON.stringify(m));
      const garbage = crypto.getRandomValues(new Uint8Array(5000));
      const request = (requestId: number, sizeBytes: number, sha256: string, fileName: string) =>
        send({ type: "request", requestId, fileName, title: "", artist: "", sizeBytes, sha256 });
      request(1, 60 * 1024 * 1024, "a".repeat(64), "huge.mp3");
      const huge = await rawWait(
        liar.inbox,
        (m) => m.type === "requestResult" && m.requestId === 1,
      );
      assertEquals(huge.outcome, "refused");
      assertTrue(/the file is 60.0 MB; the limit is 50 MB/.test(huge.reason as string));
      // Corrupt content behind an honest checksum: accepted, uploaded, refused on inspection.
      request(2, garbage.length, await sha256Hex(garbage), "corrupt.mp3");
      const offer = await host.waitFor(isRequest("waiting", (e) => e.peer === "Liar"), 5000);
      await host.send(`accept ${offer.id}`);
      const up = await rawWait(liar.inbox, (m) => m.type === "upload" && m.requestId === 2);
      const put = (body: Uint8Array<ArrayBuffer>) =>
        fetch(`http://127.0.0.1:${port}/requests/${up.token}`, { method: "PUT", body });
      const res = await put(garbage);
      assertEquals(res.status, 400);
      assertTrue(/Cannot use "corrupt.mp3"/.test(await res.text()));
      const refused = await rawWait(
        liar.inbox,
        (m) => m.type === "requestResult" && m.requestId === 2 && m.outcome === "refused",
      );
      assertTrue(/no MPEG audio frames|Cannot use/.test(refused.reason as string));
      // The token was single-use; an unknown one is not found.
      assertEquals((await put(garbage)).status, 404);
      // More bytes than announced are cut off.
      const small = garbage.slice(0, 1000);
      request(3, 1000, await sha256Hex(small), "grows.mp3");
      const offer3 = await host.waitFor(isRequest("waiting", (e) => e.fileName === "grows.mp3"));
      await host.send(`accept ${offer3.id}`);
      const up3 = await rawWait(liar.inbox, (m) => m.type === "upload" && m.requestId === 3);
      const over = await fetch(`http://127.0.0.1:${port}/requests/${up3.token}`, {
        method: "PUT",
        body: garbage,
      });
      assertEquals(over.status, 413);
      await over.body?.cancel();
      // Malformed request messages are rejected by the protocol.
      send({ type: "request", requestId: 4, fileName: "", sizeBytes: -1 });
      await rawWait(
        liar.inbox,
        (m) => m.type === "notice" && /Message rejected/.test(m.text as string),
      );
      liar.ws.close();

      // Playback never stopped, and the queue holds only the good track.
      await host.send("status");
      const st = await host.waitFor((e) => e.type === "status", 5000);
      assertEquals(st.transport, "playing");
      assertEquals(host.count((e) => e.type === "stopped" || e.type === "paused"), 0);
      assertEquals(sam.count((e) => e.type === "paused"), 0);
      assertEquals(await queueLength(host), 1);
    }),
});

Deno.test({
  name: "host killed (SIGKILL) or frozen (SIGSTOP): every peer reports it within 3 s and exits 3",
  ...opts,
  fn: () =>
    inJam("phaselock-gone-", async (tmp, procs) => {
      for (const how of ["SIGKILL", "SIGSTOP"] as const) {
        const { p: host, port } = hostProcess([fixture("noise48k.mp3")]);
        procs.push(host);
        await host.waitFor((e) => e.type === "queue", 20000, "queue");
        const peers = ["Sam", "Kim"].map((n) =>
          peerProcess(`127.0.0.1:${port}`, n, `${tmp}/${how}-${n}`)
        );
        procs.push(...peers);
        await readyOn(host, ["Sam", "Kim"]);
        await host.send("play");
        await Promise.all(peers.map((p) => p.waitFor((e) => e.type === "started", 10000)));
        const t0 = realNow();
        host.kill(how);
        for (const p of peers) {
          const e = await p.waitFor((e) => e.type === "host-disconnected", 6000, `${how} noticed`);
          const after = e.rxMs! - t0;
          assertEquals(e.message, "Host disconnected — session ended");
          assertTrue(after <= 3000, `${how}: noticed after ${after.toFixed(0)} ms`);
          console.log(`${how}: peer noticed after ${after.toFixed(0)} ms`);
          assertEquals((await p.exited).code, 3);
        }
        if (how === "SIGSTOP") host.kill("SIGKILL");
      }
    }),
});

Deno.test({
  name: "transfers cut by the link emulator resume with Range; after 3 failed retries the host " +
    "can skip the peer or retry it, and the peer stays",
  ...opts,
  fn: () =>
    inJam("phaselock-cut-", async (tmp, procs) => {
      const track = `${tmp}/long.mp3`;
      await makeNoiseMp3(track, 60, { kbps: 160 }); // ≈ 1.2 MB: 4 cuts of 150 kB leave half
      const size = (await Deno.stat(track)).size;
      const relayTo = (port: number, relayPort: number, cuts: number) =>
        new AppProcess([
          ...["--listen", `127.0.0.1:${relayPort}`, "--to", `127.0.0.1:${port}`],
          ...["--cut-after-bytes", "150000", "--cuts", String(cuts)],
        ], { script: new URL("../net/link_relay.ts", import.meta.url).pathname });
      // 1. Cut twice: the download resumes where it stopped and completes.
      {
        const { p: host, port } = hostProcess([track]);
        const relay = relayTo(port, port + 1000, 2);
        procs.push(host, relay);
        await host.waitFor((e) => e.type === "queue", 20000, "queue");
        const sam = peerProcess(`127.0.0.1:${port + 1000}`, "Sam", `${tmp}/sam1`);
        procs.push(sam);
        await host.waitFor(
          (e) => e.type === "track-ready" && e.peer === "Sam",
          30000,
          "after cuts",
        );
        const retries = sam.events.filter((e) =>
          e.type === "notice" && /Retrying/.test(e.message as string)
        );
        assertEquals(retries.length, 2, JSON.stringify(retries));
        for (const r of retries) {
          const at = Number(/resuming at byte (\d+)/.exec(r.message as string)?.[1]);
          assertTrue(at > 0 && at < size, `resumed at ${at} of ${size}`);
        }
        const id = (host.events.find((e) => e.type === "queue")!.tracks as { id: string }[])[0].id;
        assertEquals(await sha256Hex(await Deno.readFile(`${tmp}/sam1/${id}.mp3`)), id);
      }
      // 2. Cut on every attempt (1 + 3 retries): the host names peer and track; skip-peer lets
      // the others play; retry fetches it and the peer joins in.
      {
        const { p: host, port } = hostProcess([track]);
        const relay = relayTo(port, port + 1000, 4);
        procs.push(host, relay);
        await host.waitFor((e) => e.type === "queue", 20000, "queue");
        const kim = peerProcess(`127.0.0.1:${port}`, "Kim", `${tmp}/kim2`);
        const sam = peerProcess(`127.0.0.1:${port + 1000}`, "Sam", `${tmp}/sam2`);
        procs.push(kim, sam);
        const failed = await host.waitFor((e) => e.type === "transfer-failed", 30000, "failure");
        assertEquals([failed.peer, failed.fileName], ["Sam", "long.mp3"]);
        await host.waitFor((e) => e.type === "track-ready" && e.peer === "Kim", 20000);
        await host.send("play");
        await host.waitFor(
          (e) => e.type === "error" && /not ready on Sam \(failed/.test(e.message as string),
        );
        await host.send("skip-peer Sam");
        await host.send("play");
        await kim.waitFor((e) => e.type === "started", 10000, "Kim plays without Sam");
        await sleep(1500);
        await host.send("retry Sam");
        await sam.waitFor((e) => e.type === "started", 20000, "Sam joins in after retry");
        const st = sam.events.find((e) => e.type === "started")!;
        const play = host.events.find((e) => e.type === "playing")!;
        assertTrue(
          (st.atHostMs as number) - (play.atHostMs as number) > 1500,
          "Sam started mid-song, not at the beginning",
        );
        await host.send("status");
        const status = await host.waitFor((e) => e.type === "status");
        assertEquals((status.peers as { name: string }[]).map((p) => p.name).sort(), [
          "Kim",
          "Sam",
        ]);
      }
    }),
});

Deno.test({
  name: "when the next track is not on every device by the end of the current one, the queue " +
    "says who it waits for and goes on as soon as they have it",
  ...opts,
  fn: () =>
    inJam("phaselock-wait-", async (tmp, procs) => {
      const next = `${tmp}/next.mp3`;
      await makeNoiseMp3(next, 30, { kbps: 160 }); // ≈ 600 kB
      const { p: host, port } = hostProcess([fixture("tagged.mp3")]);
      // Sam's link cuts every transfer over 100 kB three times: the next track takes ~2 s more.
      const relay = new AppProcess([
        ...["--listen", `127.0.0.1:${port + 1000}`, "--to", `127.0.0.1:${port}`],
        ...["--cut-after-bytes", "100000", "--cuts", "3"],
      ], { script: new URL("../net/link_relay.ts", import.meta.url).pathname });
      procs.push(host, relay);
      await host.waitFor((e) => e.type === "queue", 20000, "queue");
      const sam = peerProcess(`127.0.0.1:${port + 1000}`, "Sam", `${tmp}/sam`);
      procs.push(sam);
      await readyOn(host, ["Sam"]);
      await host.send("play");
      await sam.waitFor((e) => e.type === "started", 10000, "playing");
      await host.send("seek 2.6"); // 0.4 s left of this 3 s track
      await host.send(`add ${next}`);
      const waits = await host.waitFor(
        (e) => e.type === "notice" && /"next" waits for Sam/.test(e.message as string),
        10000,
        "the queue waits",
      );
      await host.send("status");
      const st = await host.waitFor((e) => e.type === "status" && e.rxMs! > waits.rxMs!);
      assertEquals([st.transport, st.queuePosition, st.queueLength], ["stopped", 2, 2]);
      assertTrue(/^Sam \(/.test((st.waitingFor as string[])[0]), JSON.stringify(st.waitingFor));
      const ready = await host.waitFor(
        (e) => e.type === "track-ready" && e.peer === "Sam" && e.fileName === "next.mp3",
        20000,
        "Sam gets it",
      );
      const playing = await host.waitFor(
        (e) => e.type === "playing" && e.title === "next",
        5000,
        "the queue goes on",
      );
      assertTrue(waits.rxMs! < ready.rxMs! && ready.rxMs! <= playing.rxMs!, "waited, then went on");
      await sam.waitFor((e) => e.type === "started" && e.trackId === playing.trackId, 5000);
    }),
});

Deno.test({
  name: "changing what comes next while a track plays re-plans the transition on every device, " +
    "and removing the last next track cancels it",
  ...opts,
  fn: () =>
    inJam("phaselock-next-", async (tmp, procs) => {
      const tracks = ["tagged.mp3", "noise48k.mp3", "tones44k.mp3"].map(fixture);
      const { p: host, port } = hostProcess(tracks);
      procs.push(host);
      await host.waitFor((e) => e.type === "queue" && (e.tracks as unknown[]).length === 3, 20000);
      const sam = peerProcess(`127.0.0.1:${port}`, "Sam", `${tmp}/sam`);
      procs.push(sam);
      // Sam has the first two decoded (current and next).
      await host.waitFor(() =>
        host.count((e) => e.type === "track-ready" && e.peer === "Sam") >= 2
      );
      await host.send("play");
      const first = await sam.waitFor((e) => e.type === "next", 10000, "transition planned");
      assertEquals(first.title, "noise48k");
      // tones44k moves up: Sam decodes it, then the transition is re-planned for the same moment.
      await host.send("move 3 2");
      const second = await sam.waitFor((e) => e.type === "next" && e.title === "tones44k", 10000);
      assertEquals(second.atHostMs, first.atHostMs);
      // Both later tracks removed: nothing follows, the transition is cancelled.
      await host.send("remove 2");
      await host.send("remove 2");
      const cancel = await sam.waitFor((e) => e.type === "next" && e.trackId === null, 10000);
      assertEquals(cancel.atHostMs, first.atHostMs);
      await host.waitFor(
        (e) => e.type === "notice" && /End of the queue/.test(e.message as string),
        10000,
      );
      await sleep(300);
      assertEquals(
        sam.events.filter((e) => e.type === "started").length,
        1,
        "only the first played",
      );
      assertEquals(await queueLength(host), 1);
    }),
});
