import { MAX_NAME_LENGTH } from "./protocol.ts";

/**
 * Cleans a display name: control characters removed, whitespace collapsed, length capped.
 * Returns "" when nothing printable remains (the caller refuses such a name).
 */
export function cleanName(raw: string): string {
  // deno-lint-ignore no-control-regex
  const text = raw.replace(/\s+/g, " ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "").trim();
  return [...text].slice(0, MAX_NAME_LENGTH).join("").trim();
}

/**
 * Makes `wanted` unique among `taken` the way people expect: "Sam", then "Sam (2)", "Sam (3)".
 * Comparison ignores case so "sam" and "Sam" are not both shown.
 */
export function dedupeName(wanted: string, taken: Iterable<string>): string {
  const used = new Set([...taken].map((n) => n.toLowerCase()));
  if (!used.has(wanted.toLowerCase())) return wanted;
  for (let n = 2;; n++) {
    const candidate = `${wanted} (${n})`;
    if (!used.has(candidate.toLowerCase())) return candidate;
  }
}
