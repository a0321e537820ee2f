/** Assertions for tests: node's strict assert, under the names the tests use. */
import assert from "node:assert/strict";

export const assertEquals: <T>(actual: T, expected: T, msg?: string) => void = assert.deepEqual;
export function assertThrows(fn: () => unknown, match: RegExp = /./): void {
  assert.throws(fn, match);
}
export async function assertRejects(
  fn: () => Promise<unknown>,
  match: RegExp = /./,
): Promise<void> {
  await assert.rejects(fn, match);
}
export function assertTrue(cond: unknown, msg?: string): asserts cond {
  assert.ok(cond, msg);
}
export function assertNear(actual: number, expected: number, tol: number, msg = ""): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${msg} expected ${expected} ± ${tol}, got ${actual}`,
  );
}
