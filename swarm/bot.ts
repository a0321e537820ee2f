/**
 * Native swarm members without sound, for tests and the benchmark: the page's engine
 * ({@link SwarmMember}) running under Deno with node-datachannel's WebRTC. Several members can
 * run in one process (a swarm of twenty on a small machine).
 *
 *   deno run -A swarm/bot.ts --server http://HOST:PORT --key KEY [--count N] [--name Bot]
 *       [--share FILE.mp3]… [--tamper] [--uplink-mbps MB] [--status-ms 500]
 *
 * `--uplink-mbps` caps what each member uploads (megabytes a second), like a phone's uplink.
 *
 * Prints one JSON line per member every --status-ms: {"type":"status","name":…,…debug()}.
 * stdin commands (one per line): `quit`; `take N` / `resign N` / `select N FILEID` /
 * `play N` / `start N` / `stop N` (N = the member's index from 0); `leave N`; `share N FILE`.
 */
import { RTCPeerConnection } from "node-datachannel/polyfill";
import { SwarmMember, type SwarmMemberOptions } from "./member.ts";

type Flags = {
  server: string;
  key: string;
  count: number;
  name: string;
  share: string[];
  tamper: boolean;
  statusMs: number;
  insecure: boolean;
  uplinkMBps: number;
};

function parse(args: string[]): Flags {
  const f: Flags = {
    server: "",
    key: "",
    count: 1,
    name: "Bot",
    share: [],
    tamper: false,
    statusMs: 500,
    insecure: false,
    uplinkMBps: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i], v = () => args[++i] ?? "";
    if (a === "--server") f.server = v();
    else if (a === "--key") f.key = v();
    else if (a === "--count") f.count = Number(v());
    else if (a === "--name") f.name = v();
    else if (a === "--share") f.share.push(v());
    else if (a === "--tamper") f.tamper = true;
    else if (a === "--status-ms") f.statusMs = Number(v());
    else if (a === "--uplink-mbps") f.uplinkMBps = Number(v());
    else throw new Error(`unknown option ${a}`);
  }
  if (!f.server || !f.key) throw new Error("--server and --key are required");
  return f;
}

/** Flips one byte of every chunk this member sends: a seeder that lies. */
const tamper = (_file: string, _index: number, bytes: Uint8Array) => {
  const out = bytes.slice();
  out[out.length >> 1] ^= 0xff;
  return out;
};

if (import.meta.main) {
  const f = parse(Deno.args);
  const members: SwarmMember[] = [];
  for (let i = 0; i < f.count; i++) {
    const m = new SwarmMember({
      base: f.server.replace(/\/$/, ""),
      WebSocket,
      RTCPeerConnection: RTCPeerConnection as unknown as SwarmMemberOptions["RTCPeerConnection"],
      audio: null,
      headless: true,
      ...(f.tamper ? { tamper } : {}),
      ...(f.uplinkMBps > 0 ? { uplinkBytesPerSec: f.uplinkMBps * 1e6 } : {}),
      log: (line) => console.error(`[${f.name} ${i}] ${line}`),
    });
    members.push(m);
    m.join(f.key, f.count > 1 ? `${f.name} ${i + 1}` : f.name);
  }
  // Shared once the first member is in (files are offered to whoever links).
  for (const path of f.share) {
    members[0].shareBytes(path.split("/").at(-1)!, await Deno.readFile(path));
  }
  const timer = setInterval(() => {
    members.forEach((m, i) => {
      const d = m.debug();
      console.log(JSON.stringify({
        type: "status",
        index: i,
        phase: d.phase,
        me: d.me,
        director: d.director,
        term: d.term,
        transport: d.transport,
        locked: d.clock?.locked ?? false,
        files: d.files,
        stats: d.stats,
        links: d.links.filter((l) => l.open).length,
        marks: d.marks,
      }));
    });
  }, f.statusMs);
  const done = () => {
    clearInterval(timer);
    for (const m of members) m.leave();
    setTimeout(() => Deno.exit(0), 200);
  };
  Deno.addSignalListener("SIGTERM", done);
  Deno.addSignalListener("SIGINT", done);
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buf = "";
  for await (const chunk of lines) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const [cmd, n, arg] = buf.slice(0, nl).trim().split(/\s+/);
      buf = buf.slice(nl + 1);
      const m = members[Number(n)];
      if (cmd === "quit") done();
      else if (!m) continue;
      else if (cmd === "take") m.takeControl();
      else if (cmd === "resign") m.resign();
      else if (cmd === "select") m.select(arg);
      else if (cmd === "play") m.play();
      else if (cmd === "start") m.startNow();
      else if (cmd === "stop") m.stop();
      else if (cmd === "leave") m.leave();
      else if (cmd === "share") m.shareBytes(arg.split("/").at(-1)!, await Deno.readFile(arg));
    }
  }
  done();
}
