/// <reference lib="dom" />
import { useEffect, useState } from "preact/hooks";

/**
 * Re-renders the calling component on animation frames, at most every `everyMs`, while
 * `active`: time on screen is derived from an anchor and the clock, never ticked by events.
 * Ten a second moves a progress bar smoothly; every frame (60 a second) cost a phone's page
 * most of its CPU, which the audio it places by timing reports cannot spare.
 */
export function useFrame(active: boolean, everyMs = 100): void {
  const [, set] = useState(0);
  useEffect(() => {
    if (!active) return;
    let id = 0;
    let last = 0;
    const loop = (t: number) => {
      if (t - last >= everyMs) {
        last = t;
        set((n) => n + 1);
      }
      id = requestAnimationFrame(loop);
    };
    id = requestAnimationFrame(loop);
    return () => cancelAnimationFrame(id);
  }, [active, everyMs]);
}
