/**
 * Small checkers for JSON that came from elsewhere (the server's frames, a member's data-channel
 * frames): each names the path it failed at in a sentence, and objects refuse unknown fields, so
 * nothing rides along unseen. Pure.
 */

export class SchemaError extends Error {}

export type Check = (v: unknown, path: string) => void;

export const fail = (path: string, what: string): never => {
  throw new SchemaError(`${path} ${what}`);
};

export const num = (min: number, max: number, int = false): Check => (v, p) => {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    fail(p, int ? "must be a whole number" : "must be a number");
  }
  if (int && !Number.isInteger(v)) fail(p, "must be a whole number");
  if ((v as number) < min || (v as number) > max) fail(p, `must be within ${min}–${max}`);
};
export const int = (min: number, max: number): Check => num(min, max, true);

export const str = (max: number, pattern?: RegExp): Check => (v, p) => {
  if (typeof v !== "string") fail(p, "must be a string");
  if ((v as string).length > max) fail(p, `is longer than ${max} characters`);
  if (pattern && !pattern.test(v as string)) fail(p, "is malformed");
};

export const bool: Check = (v, p) => typeof v !== "boolean" && fail(p, "must be true or false");

export const nullable = (c: Check): Check => (v, p) => v !== null && c(v, p);

/** Lowercase hex SHA-256: swarm ids, file ids. */
export const hex64: Check = str(64, /^[0-9a-f]{64}$/);

/** An object with exactly these fields (optional ones end in `?`), no others. */
export const obj = (fields: Record<string, Check>): Check => (v, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(p, "must be an object");
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!Object.hasOwn(fields, k) && !Object.hasOwn(fields, `${k}?`)) {
      fail(p, `has an unknown field "${k.slice(0, 30)}"`);
    }
  }
  for (const [key, check] of Object.entries(fields)) {
    const optional = key.endsWith("?");
    const k = optional ? key.slice(0, -1) : key;
    if (!(k in o) || o[k] === undefined) {
      if (!optional) fail(p, `lacks "${k}"`);
      continue;
    }
    check(o[k], `${p}.${k}`);
  }
};

export const list = (max: number, item: Check): Check => (v, p) => {
  if (!Array.isArray(v)) fail(p, "must be a list");
  if ((v as unknown[]).length > max) fail(p, `has more than ${max} entries`);
  (v as unknown[]).forEach((x, i) => item(x, `${p}[${i}]`));
};
