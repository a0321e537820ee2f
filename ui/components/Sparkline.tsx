/** A minute of estimated sync error as a line; the scale is fixed so devices compare. */
export function Sparkline(props: { values: number[]; maxMs?: number; label: string }) {
  const w = 120, h = 28, max = props.maxMs ?? 2;
  const n = props.values.length;
  const pts = props.values.map((v, i) => {
    const x = w - (n - 1 - i) * (w / 59); // newest at the right edge
    const y = h - Math.min(1, v / max) * (h - 2) - 1;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  return (
    <svg
      class="spark"
      width={w}
      height={h}
      viewBox={`0 0 ${w} ${h}`}
      role="img"
      aria-label={props.label}
    >
      <line
        x1="0"
        x2={w}
        y1={h - (1 / max) * (h - 2) - 1}
        y2={h - (1 / max) * (h - 2) - 1}
        class="spark-ref"
      />
      {n > 0 && <polyline points={pts.join(" ")} class="spark-line" />}
    </svg>
  );
}
