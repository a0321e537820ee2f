/**
 * The member's signalling, driven through a scripted server socket and scripted peer
 * connections whose steps finish when the test says so: the orderings a busy network makes
 * possible, made certain.
 */
import { assertEquals } from "../tests/assert.ts";
import { encode, type FromServer } from "./protocol.ts";

/** What these tests use of a member. */
interface Member {
  join(key: string, name: string): void;
  leave(): void;
}
// member.ts names the DOM library for the page's sake. Imported statically, that library would
// join the type check of every test run with this one and clash with Deno's own WebSocket and
// stream types, so it is loaded at run time, unchecked here (the page bundle checks it).
const { SwarmMember } = await import(new URL("./member.ts", import.meta.url).href) as {
  SwarmMember: new (options: Record<string, unknown>) => Member;
};

class ScriptedSocket {
  static last: ScriptedSocket | null = null;
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.last = this;
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.();
    });
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  deliver(m: FromServer) {
    this.onmessage?.({ data: encode(m) });
  }
}

/**
 * A peer connection whose remote description is set only when the test releases it. Closed
 * meanwhile, it still resolves (as node-datachannel's does): the caller must notice by itself.
 */
class ScriptedPc {
  static all: ScriptedPc[] = [];
  readonly n = ScriptedPc.all.push(this);
  closed = false;
  remote: { type: string; sdp?: string } | null = null;
  candidates: string[] = [];
  localDescription: { type: string; sdp: string } | null = null;
  onicecandidate = null;
  onconnectionstatechange = null;
  ondatachannel = null;
  connectionState = "new";
  #release: (() => void)[] = [];
  setRemoteDescription(d: { type: string; sdp?: string }) {
    if (d.sdp?.includes("unusable")) return Promise.reject(new Error("unusable description"));
    return new Promise<void>((resolve) =>
      this.#release.push(() => {
        if (!this.closed) this.remote = d;
        resolve();
      })
    );
  }
  release() {
    for (const r of this.#release.splice(0)) r();
  }
  addIceCandidate(c: { candidate?: string }) {
    if (this.closed) return Promise.reject(new Error("closed"));
    if (!this.remote) return Promise.reject(new Error("a candidate before the description"));
    this.candidates.push(c.candidate!);
    return Promise.resolve();
  }
  createAnswer() {
    return Promise.resolve({ type: "answer", sdp: `v=0\r\nanswer-of-pc-${this.n}\r\n` });
  }
  createOffer() {
    return Promise.resolve({ type: "offer", sdp: `v=0\r\noffer-of-pc-${this.n}\r\n` });
  }
  setLocalDescription(d: { type: string; sdp: string }) {
    if (this.closed) return Promise.reject(new Error("closed"));
    this.localDescription = d;
    return Promise.resolve();
  }
  createDataChannel() {
    return { close() {} };
  }
  close() {
    this.closed = true;
  }
}

const settle = () => new Promise((r) => setTimeout(r, 10));

function newMember(log: string[]) {
  ScriptedPc.all = [];
  return new SwarmMember({
    base: "http://127.0.0.1:1",
    WebSocket: ScriptedSocket,
    RTCPeerConnection: ScriptedPc,
    audio: null,
    headless: true,
    log: (l: string) => log.push(l),
  });
}

Deno.test("a second offer while the first is still being set up: candidates and the answer belong to the second", async () => {
  const log: string[] = [];
  const member = newMember(log);
  member.join("key", "Old");
  await settle();
  const ws = ScriptedSocket.last!;
  ws.deliver({ type: "welcome", you: 1, members: [], iceServers: [] });
  ws.deliver({ type: "joined", member: { id: 2, name: "New" } });
  const offer = (k: string) => ({
    type: "signal" as const,
    from: 2,
    description: { type: "offer" as const, sdp: `v=0\r\n${k}\r\n` },
  });
  const cand = (k: string) => ({
    type: "signal" as const,
    from: 2,
    candidate: { candidate: `candidate:${k}`, sdpMid: "0", sdpMLineIndex: 0 },
  });
  // The newer member offers, gives up on it and offers again before the first is set.
  ws.deliver(offer("first"));
  await settle();
  ws.deliver(cand("for-first"));
  ws.deliver(offer("second"));
  ws.deliver(cand("for-second"));
  await settle();
  // The first connection's remote description completes late, after the second's arrived.
  for (const pc of ScriptedPc.all) pc.release();
  await settle();
  for (const pc of ScriptedPc.all) pc.release();
  await settle();

  const [first, second] = ScriptedPc.all;
  assertEquals(ScriptedPc.all.length, 2);
  assertEquals(first.closed, true);
  assertEquals(second.closed, false);
  assertEquals(second.remote?.sdp, "v=0\r\nsecond\r\n");
  assertEquals(second.candidates, ["candidate:for-second"]);
  const answers = ws.sent.filter((m) => m.type === "signal");
  assertEquals(answers, [{
    type: "signal",
    to: 2,
    description: { type: "answer", sdp: second.localDescription!.sdp },
  }]);
  assertEquals(log.filter((l) => l.includes("failed")), []);
  member.leave();
});

Deno.test("an answer that cannot be used: the newer member offers again at once", async () => {
  const log: string[] = [];
  const member = newMember(log);
  member.join("key", "New");
  await settle();
  const ws = ScriptedSocket.last!;
  ws.deliver({ type: "welcome", you: 3, members: [{ id: 2, name: "Old" }], iceServers: [] });
  await settle();
  const offers = () => ws.sent.filter((m) => m.type === "signal");
  assertEquals(offers().length, 1);
  ws.deliver({
    type: "signal",
    from: 2,
    description: { type: "answer", sdp: "v=0\r\nunusable\r\n" },
  });
  await settle();
  assertEquals(ScriptedPc.all.length, 2);
  assertEquals(ScriptedPc.all[0].closed, true);
  assertEquals(offers().length, 2);
  assertEquals(
    (offers()[1].description as { sdp: string }).sdp,
    ScriptedPc.all[1].localDescription!.sdp,
  );
  assertEquals(log.some((l) => l.includes("unusable description")), true);
  member.leave();
});
