/** Draws inter-device error over time, one line per device pair, as a standalone SVG. */
export function errorPlotSvg(
  title: string,
  pairs: { pair: string; series: { atSec: number; lagMs: number }[] }[],
  xLabel = "time in recording (s)",
): string {
  const W = 900, H = 360, L = 70, R = 180, T = 40, B = 45;
  const pts = pairs.flatMap((p) => p.series);
  const t0 = pts.length ? Math.min(...pts.map((p) => p.atSec)) : 0;
  const t1 = pts.length ? Math.max(...pts.map((p) => p.atSec)) : 1;
  const peak = Math.max(0.1, ...pts.map((p) => Math.abs(p.lagMs)));
  const yMax = niceCeil(peak * 1.1);
  const x = (t: number) => L + ((t - t0) / Math.max(1e-9, t1 - t0)) * (W - L - R);
  const y = (ms: number) => T + ((yMax - ms) / (2 * yMax)) * (H - T - B);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-size="15">${esc(title)}</text>`,
  ];
  for (const v of [-yMax, -yMax / 2, 0, yMax / 2, yMax]) {
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="${
        v === 0 ? "#888" : "#ddd"
      }"/>`,
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`,
    );
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    parts.push(
      `<text x="${x(t)}" y="${H - B + 18}" text-anchor="middle">${
        t.toFixed(t1 - t0 > 60 ? 0 : 1)
      }</text>`,
    );
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${
      (T + H - B) / 2
    })" text-anchor="middle">lag (ms)</text>`,
  );
  pairs.forEach((p, i) => {
    const c = colors[i % colors.length];
    const d = p.series.map((s, j) =>
      `${j ? "L" : "M"}${x(s.atSec).toFixed(1)},${y(s.lagMs).toFixed(1)}`
    )
      .join("");
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.2"/>`);
    parts.push(
      `<line x1="${W - R + 15}" x2="${W - R + 35}" y1="${T + 10 + i * 20}" y2="${
        T + 10 + i * 20
      }" stroke="${c}" stroke-width="2"/>`,
      `<text x="${W - R + 40}" y="${T + 14 + i * 20}">${esc(p.pair)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2);
}
