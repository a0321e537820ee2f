import { ms } from "./format.ts";
import { Sparkline } from "./Sparkline.tsx";

/**
 * Per device, a minute of the *estimated* sync error: the clock estimate's noise plus the
 * player's own placement error. An estimate from the devices' reports, not a measurement.
 */
export function SyncHealth(
  props: { health: Record<string, { host: boolean; errorsMs: number[] }> },
) {
  const names = Object.keys(props.health);
  return (
    <section class="health card" aria-label="Sync health">
      <h2>
        Sync health <span class="muted small">estimate, last minute</span>
      </h2>
      {names.length === 0 && <p class="muted">Shown while the jam runs.</p>}
      <ul>
        {names.map((name) => {
          const d = props.health[name];
          const last = d.errorsMs.at(-1) ?? 0;
          const word = last <= 1 ? "in sync" : last <= 5 ? "close" : "off";
          return (
            <li key={name} class="health-row">
              <span class="health-name">{name}{d.host ? " (host)" : ""}</span>
              <Sparkline values={d.errorsMs} label={`Estimated sync error of ${name}`} />
              <span class={`health-value health-${word.replace(" ", "-")}`}>
                ±{ms(last, 2)} · {word}
              </span>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
