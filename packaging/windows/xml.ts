/**
 * Just enough XML for the installer's source: elements with attributes and children, written
 * with escaping and indentation, and a strict reader for what the writer makes (declaration,
 * comments, elements, attributes, entity references, text), so a rendering can be checked for
 * well-formedness and read back without an XML library.
 */

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
}

/** An element; attributes whose value is undefined are left out. */
export function el(
  name: string,
  attrs: Record<string, string | undefined> = {},
  children: XmlElement[] = [],
): XmlElement {
  const kept: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) kept[k] = v;
  return { name, attrs: kept, children };
}

const escape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The document: an XML declaration, an optional comment, then `root`, two spaces per level. */
export function renderXml(root: XmlElement, comment?: string): string {
  const lines = ['<?xml version="1.0" encoding="utf-8"?>'];
  if (comment) lines.push(`<!-- ${comment.replace(/--/g, "—")} -->`);
  const walk = (e: XmlElement, depth: number) => {
    const pad = "  ".repeat(depth);
    const attrs = Object.entries(e.attrs).map(([k, v]) => ` ${k}="${escape(v)}"`).join("");
    if (!e.children.length) return void lines.push(`${pad}<${e.name}${attrs} />`);
    lines.push(`${pad}<${e.name}${attrs}>`);
    for (const c of e.children) walk(c, depth + 1);
    lines.push(`${pad}</${e.name}>`);
  };
  walk(root, 0);
  return lines.join("\n") + "\n";
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const NAME = /^[A-Za-z_][\w.:-]*/;

/**
 * Reads a document back into elements (text between elements must be blank); throws with a
 * sentence naming the byte offset where it is not well-formed.
 */
export function parseXml(text: string): XmlElement {
  let at = 0;
  const fail = (what: string): never => {
    throw new Error(`Not well-formed XML at offset ${at}: ${what}.`);
  };
  const skipSpace = () => {
    while (/\s/.test(text[at] ?? "")) at++;
  };
  const unescape = (s: string) =>
    s.replace(/&([a-z]+);|&/g, (m, k?: string) => k && k in ENTITIES ? ENTITIES[k] : fail(m));
  const skipMisc = () => {
    for (;;) {
      skipSpace();
      if (text.startsWith("<!--", at)) {
        const end = text.indexOf("-->", at + 4);
        if (end < 0) fail("a comment is not closed");
        if (text.slice(at + 4, end).includes("--")) fail('a comment holds "--"');
        at = end + 3;
      } else if (text.startsWith("<?", at)) {
        const end = text.indexOf("?>", at);
        if (end < 0) fail("a declaration is not closed");
        at = end + 2;
      } else return;
    }
  };
  const element = (): XmlElement => {
    if (text[at] !== "<") fail("an element was expected");
    at++;
    const name = NAME.exec(text.slice(at))?.[0] ?? fail("an element name was expected");
    at += name.length;
    const attrs: Record<string, string> = {};
    for (;;) {
      skipSpace();
      if (text.startsWith("/>", at)) {
        at += 2;
        return { name, attrs, children: [] };
      }
      if (text[at] === ">") break;
      const key = NAME.exec(text.slice(at))?.[0] ?? fail(`an attribute of <${name}> is malformed`);
      at += key.length;
      skipSpace();
      if (text[at] !== "=") fail(`attribute ${key} has no "="`);
      at++;
      skipSpace();
      const q = text[at];
      if (q !== '"' && q !== "'") fail(`attribute ${key} is not quoted`);
      const end = text.indexOf(q, at + 1);
      if (end < 0) fail(`attribute ${key} is not closed`);
      const raw = text.slice(at + 1, end);
      if (raw.includes("<")) fail(`attribute ${key} holds "<"`);
      if (key in attrs) fail(`attribute ${key} appears twice on <${name}>`);
      attrs[key] = unescape(raw);
      at = end + 1;
    }
    at++;
    const children: XmlElement[] = [];
    for (;;) {
      const next = text.indexOf("<", at);
      if (next < 0) fail(`<${name}> is not closed`);
      if (unescape(text.slice(at, next)).trim()) fail(`<${name}> holds text`);
      at = next;
      if (text.startsWith("</", at)) {
        at += 2;
        if (!text.startsWith(name, at)) fail(`</${name}> was expected`);
        at += name.length;
        skipSpace();
        if (text[at] !== ">") fail(`</${name}> is not closed`);
        at++;
        return { name, attrs, children };
      }
      if (text.startsWith("<!--", at)) skipMisc();
      else children.push(element());
    }
  };
  skipMisc();
  const root = element();
  skipMisc();
  if (at !== text.length) fail("something follows the root element");
  return root;
}

/** Every element under `root` (itself included) named `name`, in document order. */
export function findAll(root: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement) => {
    if (e.name === name) out.push(e);
    e.children.forEach(walk);
  };
  walk(root);
  return out;
}
