/// <reference lib="dom" />
import { useEffect, useState } from "preact/hooks";

/**
 * Re-renders the calling component once per animation frame while `active`: time on screen is
 * derived from an anchor and the clock, never ticked by events.
 */
export function useFrame(active: boolean): void {
  const [, set] = useState(0);
  useEffect(() => {
    if (!active) return;
    let id = 0;
    const loop = () => {
      set((n) => n + 1);
      id = requestAnimationFrame(loop);
    };
    id = requestAnimationFrame(loop);
    return () => cancelAnimationFrame(id);
  }, [active]);
}
