/** 83.4 → "1:23". */
export function clockTime(sec: number): string {
  const s = Math.max(0, Math.floor(sec));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** 0.42 → "42 %". */
export function percent(fraction: number): string {
  return `${Math.round(fraction * 100)} %`;
}

export function ms(value: number, digits = 1): string {
  return `${value.toFixed(digits)} ms`;
}
