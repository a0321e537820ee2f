/** QR code drawing without the DOM, so unit tests can check it. */

/** Light modules around the code: scanners need 4 to find its edge (ISO/IEC 18004). */
export const QR_QUIET_ZONE = 4;

/**
 * The dark modules of a QR code as one SVG path in module units, shifted by the quiet zone:
 * each run of dark modules in a row is one rectangle, so a 25 × 25 code is ~200 short commands.
 */
export function qrPath(rows: string[], quiet = QR_QUIET_ZONE): string {
  let d = "";
  rows.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      if (row[x] !== "1") {
        x++;
        continue;
      }
      let end = x;
      while (row[end] === "1") end++;
      d += `M${x + quiet} ${y + quiet}h${end - x}v1h${x - end}z`;
      x = end;
    }
  });
  return d;
}
