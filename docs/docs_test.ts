/**
 * The docs stay true to the repository: the architecture picture is the rendering of its .dot,
 * every relative link and image in docs/*.md and README.md points at a file that exists, and
 * every control message of session/protocol.ts is described in docs/protocol.md.
 */
import { assertEquals, assertTrue } from "../tests/assert.ts";
import { decodeMessage, ProtocolError } from "../session/protocol.ts";

const DOCS = new URL("./", import.meta.url);
const ROOT = new URL("../", import.meta.url);
const read = (rel: string, base = ROOT) => Deno.readTextFile(new URL(rel, base));

/** Names of the graph's nodes, from the `<title>` of every `class="node"` group of an SVG. */
function nodeTitles(svg: string): string[] {
  const entities: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  const decode = (s: string) =>
    s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e: string) =>
      e[0] === "#"
        ? String.fromCodePoint(
          e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : Number(e.slice(1)),
        )
        : entities[e] ?? m);
  return [...svg.matchAll(/<g\b[^>]*class="node"[^>]*>\s*<title>([^<]*)<\/title>/g)]
    .map((m) => decode(m[1])).sort();
}

Deno.test("docs/architecture.svg is docs/architecture.dot rendered by Graphviz", async () => {
  let out: Deno.CommandOutput;
  try {
    const dot = new Deno.Command("dot", {
      args: ["-Tsvg", new URL("architecture.dot", DOCS).pathname],
      stdout: "piped",
      stderr: "piped",
    });
    out = await dot.output();
  } catch (e) {
    throw new Error(
      `Graphviz "dot" is needed to check docs/architecture.svg and could not be run ` +
        `(${(e as Error).message}): run "deno run -A tests/setup.ts" as root, or ` +
        `"apt-get install graphviz".`,
    );
  }
  assertTrue(out.success, `dot failed: ${new TextDecoder().decode(out.stderr)}`);
  const fresh = nodeTitles(new TextDecoder().decode(out.stdout));
  const committed = nodeTitles(await read("architecture.svg", DOCS));
  assertTrue(fresh.length >= 5, `the rendered graph has only ${fresh.length} nodes`);
  assertEquals(
    committed,
    fresh,
    "docs/architecture.svg is out of date: dot -Tsvg docs/architecture.dot -o docs/architecture.svg " +
      "&& deno fmt docs/architecture.svg",
  );
});

/** Relative targets of Markdown links and images, and of HTML `src`/`href`, outside code. */
function relativeTargets(md: string): string[] {
  const prose = md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
  const targets = [
    ...[...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]),
    ...[...prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1]),
    ...[...prose.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]),
  ];
  return targets.filter((t) => !/^([a-z][a-z0-9+.-]*:|#|\/\/)/i.test(t));
}

Deno.test("every relative link and image in README.md and docs/*.md points at a file", async () => {
  const files = ["README.md"];
  for await (const e of Deno.readDir(DOCS)) {
    if (e.isFile && e.name.endsWith(".md")) files.push(`docs/${e.name}`);
  }
  const missing: string[] = [];
  let checked = 0;
  for (const f of files) {
    const base = new URL(f, ROOT);
    for (const t of relativeTargets(await read(f))) {
      const path = decodeURIComponent(t.replace(/[#?].*$/, ""));
      if (!path) continue;
      checked++;
      try {
        await Deno.stat(new URL(path, base));
      } catch {
        missing.push(`${f}: ${t}`);
      }
    }
  }
  assertTrue(checked > 0, "found no relative links at all: the link pattern is broken");
  assertEquals(missing, [], `links to files that do not exist:\n${missing.join("\n")}`);
});

/**
 * The `type` literals of the HostToPeer and PeerToHost unions: each union's member interfaces,
 * then each interface's `type: "…"` field.
 */
function messageTypes(src: string): { peer: string[]; host: string[] } {
  const members = (union: string) => {
    const m = new RegExp(`export type ${union}\\s*=([^;]+);`).exec(src);
    if (!m) throw new Error(`session/protocol.ts has no "export type ${union} = …;"`);
    return m[1].split("|").map((s) => s.trim()).filter(Boolean);
  };
  const literal = (iface: string) => {
    const m = new RegExp(`interface ${iface}\\s*\\{[^}]*?\\btype:\\s*"([^"]+)"`).exec(src);
    if (!m) throw new Error(`session/protocol.ts: interface ${iface} has no type literal`);
    return m[1];
  };
  return { peer: members("PeerToHost").map(literal), host: members("HostToPeer").map(literal) };
}

Deno.test("every control message type in session/protocol.ts is described in docs/protocol.md", async () => {
  const types = messageTypes(await read("session/protocol.ts"));
  assertTrue(
    types.peer.length >= 5 && types.host.length >= 10,
    `too few: ${JSON.stringify(types)}`,
  );
  // The enumeration agrees with the validator: each type is known to decodeMessage, from its side.
  for (const [from, list] of [["peer", types.peer], ["host", types.host]] as const) {
    for (const type of list) {
      try {
        decodeMessage(JSON.stringify({ type }), from);
      } catch (e) {
        assertTrue(e instanceof ProtocolError, String(e));
        assertTrue(
          !/unknown message type|may not send/.test((e as Error).message),
          `"${type}" from the ${from}: ${(e as Error).message}`,
        );
      }
    }
  }
  const doc = await read("protocol.md", DOCS);
  const undocumented = [...new Set([...types.peer, ...types.host])]
    .filter((t) => !doc.includes(`\`${t}\``));
  assertEquals(undocumented, [], `docs/protocol.md does not mention: ${undocumented.join(", ")}`);
});
