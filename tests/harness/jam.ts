/**
 * Shorthands for tests that run a jam on loopback: a headless host, a headless peer, and a raw
 * WebSocket "peer" for sending what a real peer never would.
 */
import { PROTOCOL_VERSION } from "../../session/protocol.ts";
import { AppProcess } from "./proc.ts";
import { freePort } from "./ports.ts";

export const fixture = (n: string) => new URL(`../fixtures/${n}`, import.meta.url).pathname;

/** A headless host on a fresh loopback port, null audio unless `extra` says otherwise. */
export function hostProcess(
  extra: string[] = [],
  opts: { env?: Record<string, string>; audio?: string } = {},
): { p: AppProcess; port: number } {
  const port = freePort();
  const p = new AppProcess([
    ...["host", "--headless", "--name", "Test Jam", "--as", "Alex", "--port", String(port)],
    ...["--bind", "127.0.0.1", "--audio", opts.audio ?? "null", "--no-advertise", ...extra],
  ], { env: opts.env });
  return { p, port };
}

/** A headless peer joining `target` (HOST:PORT) with its own cache folder. */
export function peerProcess(
  target: string,
  name: string,
  cacheDir: string,
  opts: { env?: Record<string, string>; audio?: string; extra?: string[] } = {},
): AppProcess {
  return new AppProcess([
    ...["join", "--headless", target, "--as", name, "--audio", opts.audio ?? "null"],
    ...["--cache-dir", cacheDir, ...(opts.extra ?? [])],
  ], { env: opts.env });
}

/** A WebSocket that says hello; resolves with the first answer. Collects every message. */
export function rawPeer(
  port: number,
  name: string,
): Promise<{ ws: WebSocket; first: Record<string, unknown>; inbox: Record<string, unknown>[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  const inbox: Record<string, unknown>[] = [];
  return new Promise((resolve, reject) => {
    ws.onopen = () =>
      ws.send(
        JSON.stringify({
          type: "hello",
          protocolVersion: PROTOCOL_VERSION,
          name,
          client: "native",
          audio: { backend: "null", device: false },
        }),
      );
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      inbox.push(m);
      if (inbox.length === 1) resolve({ ws, first: m, inbox });
    };
    ws.onerror = () => reject(new Error("socket error"));
  });
}

/** Waits (bounded) until `pred` holds for one of the raw peer's messages. */
export async function rawWait(
  inbox: Record<string, unknown>[],
  pred: (m: Record<string, unknown>) => boolean,
  timeoutMs = 10000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const hit = inbox.find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out; raw peer got: ${JSON.stringify(inbox.slice(-5)).slice(0, 1500)}`);
}
