import { assertEquals, assertTrue } from "../tests/assert.ts";
import { sha256Hex } from "../net/transfer.ts";
import type { EngineEvent } from "./commands.ts";
import { Inbox } from "./inbox.ts";
import type { HostToPeer, RequestMsg } from "./protocol.ts";

async function setup() {
  const dir = await Deno.makeTempDir();
  const sent: [number, HostToPeer][] = [];
  const events: EngineEvent[] = [];
  const added: string[] = [];
  const inbox = new Inbox(`${dir}/requests`, {
    send: (id, m) => sent.push([id, m]),
    emit: (e) => events.push(e),
    isQueued: (sha) => sha === "f".repeat(64),
    add: (path, o) => {
      added.push(path);
      return Promise.resolve(o.fileName === "bad.mp3" ? 'Cannot use "bad.mp3": nope' : null);
    },
  });
  const bytes = new Uint8Array(1000).fill(7);
  const request = async (
    requestId: number,
    extra: Partial<RequestMsg> = {},
  ): Promise<RequestMsg> => ({
    type: "request",
    requestId,
    fileName: "song.mp3",
    title: "Song",
    artist: "",
    sizeBytes: bytes.length,
    sha256: await sha256Hex(bytes),
    ...extra,
  });
  const body = (b: Uint8Array) => new Blob([b.slice()]).stream();
  const last = (): HostToPeer => sent[sent.length - 1][1];
  return { dir, sent, events, added, inbox, bytes, request, body, last };
}

const sam = { id: 1, name: "Sam" };

Deno.test("inbox: offer, accept, upload, queue — and the token works once", async () => {
  const t = await setup();
  t.inbox.offer(sam, await t.request(5));
  assertEquals(t.last(), { type: "requestResult", requestId: 5, outcome: "waiting" });
  assertEquals(t.inbox.list().map((e) => [e.id, e.peer, e.state]), [[1, "Sam", "waiting"]]);
  t.inbox.accept(1);
  const up = t.last() as Extract<HostToPeer, { type: "upload" }>;
  assertEquals([up.type, up.requestId, up.token.length], ["upload", 5, 32]);
  const r = await t.inbox.upload(up.token, t.body(t.bytes));
  assertEquals(r.status, 200);
  assertEquals(t.added.length, 1);
  assertTrue(t.added[0].startsWith(`${t.dir}/requests/`), "stored under the inbox folder");
  assertEquals(t.last(), { type: "requestResult", requestId: 5, outcome: "queued" });
  assertEquals((await t.inbox.upload(up.token, t.body(t.bytes))).status, 404);
  assertEquals(t.inbox.list(), []);
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("inbox: refusals are sentences — too big, empty, queued, duplicate, too many", async () => {
  const t = await setup();
  const reason = async (id: number, extra: Partial<RequestMsg>) => {
    t.inbox.offer(sam, await t.request(id, extra));
    const m = t.last() as Extract<HostToPeer, { type: "requestResult" }>;
    return `${m.outcome}: ${m.reason ?? ""}`;
  };
  assertTrue(
    /refused: .*60.0 MB; the limit is 50 MB/.test(await reason(1, { sizeBytes: 60 * 1048576 })),
  );
  assertTrue(/refused: .*the file is empty/.test(await reason(2, { sizeBytes: 0 })));
  assertTrue(/already in the queue/.test(await reason(3, { sha256: "f".repeat(64) })));
  assertEquals(await reason(4, {}), "waiting: ");
  assertTrue(/already waiting in the inbox/.test(await reason(5, {})));
  await reason(6, { sha256: "1".repeat(64) });
  await reason(7, { sha256: "2".repeat(64) });
  assertTrue(/already have 3 requests waiting/.test(await reason(8, { sha256: "3".repeat(64) })));
  // Another peer is not limited by Sam's requests.
  t.inbox.offer({ id: 2, name: "Kim" }, await t.request(1, { sha256: "4".repeat(64) }));
  assertEquals((t.last() as { outcome: string }).outcome, "waiting");
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("inbox: uploads that are too long, too short, changed or not MP3 are refused", async () => {
  const t = await setup();
  const accepted = async (requestId: number, extra: Partial<RequestMsg> = {}) => {
    t.inbox.offer(sam, await t.request(requestId, extra));
    t.inbox.accept(t.inbox.list().at(-1)!.id);
    return (t.last() as { token: string }).token;
  };
  const long = await t.inbox.upload(await accepted(1), t.body(new Uint8Array(2000)));
  assertEquals(long.status, 413);
  const short = await t.inbox.upload(await accepted(2), t.body(t.bytes.subarray(0, 10)));
  assertEquals([short.status, /stopped after 10 of 1000 bytes/.test(short.text)], [400, true]);
  const changed = await t.inbox.upload(await accepted(3), t.body(new Uint8Array(1000)));
  assertEquals([changed.status, /checksum does not match/.test(changed.text)], [400, true]);
  const bad = await t.inbox.upload(await accepted(4, { fileName: "bad.mp3" }), t.body(t.bytes));
  assertEquals([bad.status, bad.text], [400, 'Cannot use "bad.mp3": nope']);
  // Nothing half-written is left behind, and the refused file is removed.
  assertEquals([...Deno.readDirSync(`${t.dir}/requests`)].length, 0);
  await Deno.remove(t.dir, { recursive: true });
});

Deno.test("inbox: rejecting tells the requester; a peer leaving withdraws its requests", async () => {
  const t = await setup();
  t.inbox.offer(sam, await t.request(1));
  t.inbox.reject(1);
  assertEquals(t.last(), {
    type: "requestResult",
    requestId: 1,
    outcome: "rejected",
    reason: 'The host declined "song.mp3".',
  });
  t.inbox.reject(1);
  assertTrue(
    t.events.some((e) => e.type === "error" && /no request 1 in the inbox/.test(e.message)),
  );
  t.inbox.offer(sam, await t.request(2));
  t.inbox.peerLeft(1, "Sam");
  assertEquals(t.inbox.list(), []);
  assertTrue(t.events.some((e) => e.type === "request" && e.state === "withdrawn"));
  await Deno.remove(t.dir, { recursive: true });
});
