/**
 * The join address as a QR code for the host's window: a phone's camera opens the page. Error
 * correction M (15 % of the code may be unreadable: a screen's glare, a smudge) keeps a LAN
 * address at version 2, 25 × 25 modules, big enough to scan from across a table at 160 px.
 */
import QRCode from "qrcode";

/** `text` as QR modules: one string per row, `1` dark and `0` light, without a quiet zone. */
export function qrRows(text: string): string[] {
  const { size, data } = QRCode.create(text, { errorCorrectionLevel: "M" }).modules;
  const rows: string[] = [];
  for (let y = 0; y < size; y++) {
    let row = "";
    for (let x = 0; x < size; x++) row += data[y * size + x] ? "1" : "0";
    rows.push(row);
  }
  return rows;
}
