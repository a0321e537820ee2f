/// <reference lib="dom" />
import { useEffect } from "preact/hooks";

/**
 * Keeps the screen on while `active` (in a jam, in a swarm), where the browser allows it: a
 * secure page only. Taken again whenever the page becomes visible (a lock ends when it hides).
 */
export function useWakeLock(active: boolean): void {
  useEffect(() => {
    const wl = (navigator as Navigator & {
      wakeLock?: { request(t: "screen"): Promise<{ release(): Promise<void> }> };
    }).wakeLock;
    if (!active || !wl) return;
    let lock: { release(): Promise<void> } | null = null;
    const take = () => {
      if (document.visibilityState === "visible") {
        wl.request("screen").then((l) => lock = l, () => {});
      }
    };
    take();
    document.addEventListener("visibilitychange", take);
    return () => {
      document.removeEventListener("visibilitychange", take);
      void lock?.release().catch(() => {});
    };
  }, [active]);
}
