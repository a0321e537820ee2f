/// <reference lib="dom" />
/** The desktop client: the control server's WebSocket, authorised by the per-run token. */
import { signal } from "@preact/signals";
import type { EngineEvent } from "../session/commands.ts";
import { offsetFrom, type TimeSample, type UiClient } from "./client.ts";

const pageNow = () => performance.timeOrigin + performance.now();

export function connectControl(token: string): UiClient {
  const listeners = new Set<(e: EngineEvent) => void>();
  const connected = signal(false);
  const samples: TimeSample[] = [];
  let offsetMs = 0;
  let ws: WebSocket;
  let pings: ReturnType<typeof setInterval> | undefined;
  let retryMs = 500;

  const open = () => {
    ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
    ws.onopen = () => {
      connected.value = true;
      retryMs = 500;
      let n = 0;
      const ping = () => ws.readyState === 1 && ws.send(JSON.stringify({ ping: pageNow() }));
      ping();
      // Quick at first so the progress bar is right at once, then every 2 s (the host's clock
      // is the session's, which may be another machine's for a peer).
      pings = setInterval(() => {
        if (++n < 5 || n % 10 === 0) ping();
      }, 200);
    };
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.type === "pong") {
        samples.push({ sentMs: e.t0, hostMs: e.hostMs, receivedMs: pageNow() });
        if (samples.length > 12) samples.shift();
        offsetMs = offsetFrom(samples) ?? offsetMs;
        return;
      }
      if (e.type === "session") samples.length = 0; // another clock from now on
      for (const fn of listeners) fn(e as EngineEvent);
    };
    ws.onclose = () => {
      clearInterval(pings);
      connected.value = false;
      // The app may be busy or restarting: keep trying, less often as time goes on.
      retryMs = Math.min(5000, retryMs * 1.5);
      setTimeout(open, retryMs);
    };
  };
  open();

  return {
    connected,
    send: (c) => ws.readyState === 1 && ws.send(JSON.stringify(c)),
    onEvent(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    hostNowMs: () => pageNow() + offsetMs,
    upload(file, onProgress) {
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", `/upload?name=${encodeURIComponent(file.name)}`);
        xhr.setRequestHeader("X-PhaseLock-Token", token);
        xhr.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded / e.total);
        xhr.onload = () => {
          let body: { error?: string } = {};
          try {
            body = JSON.parse(xhr.responseText);
          } catch { /* not JSON: use the status */ }
          resolve(xhr.status === 200 ? null : body.error ?? `Upload failed (${xhr.status}).`);
        };
        xhr.onerror = () => resolve(`Could not send "${file.name}" to PhaseLock.`);
        xhr.send(file);
      });
    },
  };
}
