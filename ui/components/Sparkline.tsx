/** Where the dashed guide sits: the half millisecond we aim to stay under on a LAN. */
const GUIDE_MS = 0.5;

/**
 * A minute of estimated sync error as a line, newest at the right. The scale is fixed (0 to
 * `maxMs`, 1 ms by default) so that devices compare at a glance; larger values clip at the top.
 */
export function Sparkline(props: { values: number[]; maxMs?: number; label: string }) {
  const w = 120, h = 28, max = props.maxMs ?? 1;
  const y = (ms: number) => h - Math.min(1, ms / max) * (h - 2) - 1;
  const n = props.values.length;
  const pts = props.values.map((v, i) => `${(w - (n - 1 - i) * (w / 59)).toFixed(1)},${y(v)}`);
  return (
    <svg
      class="spark"
      width={w}
      height={h}
      viewBox={`0 0 ${w} ${h}`}
      role="img"
      aria-label={props.label}
    >
      <title>{`${props.label}; dashed line: ${GUIDE_MS} ms; top: ${max} ms`}</title>
      <line x1="0" x2={w} y1={y(GUIDE_MS)} y2={y(GUIDE_MS)} class="spark-ref" />
      {n > 0 && <polyline points={pts.join(" ")} class="spark-line" />}
    </svg>
  );
}
