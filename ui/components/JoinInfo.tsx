/// <reference lib="dom" />
import { useEffect, useRef, useState } from "preact/hooks";
import { QR_QUIET_ZONE, qrPath } from "./qr_path.ts";

/** About how big the code is drawn (px); a whole number of pixels per module keeps it even. */
const QR_PX = 160;

/** A QR code: black on white whatever the theme (scanners expect dark on light), crisp edges. */
function QrCode(props: { rows: string[]; label: string }) {
  const n = props.rows.length + 2 * QR_QUIET_ZONE;
  const px = n * Math.max(1, Math.round(QR_PX / n));
  return (
    <svg
      class="qr"
      width={px}
      height={px}
      viewBox={`0 0 ${n} ${n}`}
      role="img"
      aria-label={props.label}
      shape-rendering="crispEdges"
    >
      <rect width={n} height={n} fill="#fff" />
      <path d={qrPath(props.rows)} fill="#000" />
    </svg>
  );
}

/** The URL with line-break chances after `//` and before the port, never inside the address. */
function breakable(url: string) {
  const m = /^(\w+:\/\/)(.+?)(:\d+\/.*)$/.exec(url);
  return m
    ? (
      <>
        {m[1]}
        <wbr />
        {m[2]}
        <wbr />
        {m[3]}
      </>
    )
    : url;
}

const LOOPBACK = /^http:\/\/(127\.|\[::1\]|localhost[:/])/;

/**
 * The host's "Join from a phone" panel: the address of the jam's page as text to copy and as a
 * QR code to scan. It folds away once everyone is in.
 */
export function JoinInfo(props: { url: string; qr: string[]; peers: number; maxPeers: number }) {
  const [open, setOpen] = useState(true);
  const [said, setSaid] = useState("");
  const text = useRef<HTMLElement>(null);
  useEffect(() => {
    if (!said) return;
    const t = setTimeout(() => setSaid(""), 4000);
    return () => clearTimeout(t);
  }, [said]);

  const selectText = () => {
    const el = text.current, sel = getSelection();
    if (!el || !sel) return;
    const range = document.createRange();
    range.selectNodeContents(el);
    sel.removeAllRanges();
    sel.addRange(range);
  };
  const copy = async () => {
    try {
      // Absent on plain-http pages other than localhost; a webview may refuse it.
      await navigator.clipboard.writeText(props.url);
      setSaid("Copied.");
    } catch {
      selectText();
      let copied = false;
      try {
        copied = document.execCommand("copy");
      } catch { /* left selected for the person to copy */ }
      const keys = /Mac|iPhone|iPad/.test(navigator.userAgent) ? "⌘C" : "Ctrl+C";
      setSaid(copied ? "Copied." : `Selected: press ${keys} to copy.`);
    }
  };

  const full = props.maxPeers > 0 && props.peers >= props.maxPeers;
  return (
    <section class={`join card${open ? "" : " folded"}`} aria-label="Join from a phone">
      <div class="join-head">
        <h2>Join from a phone</h2>
        <button
          type="button"
          class="icon join-toggle"
          aria-expanded={open}
          aria-controls="join-body"
          onClick={() => setOpen(!open)}
        >
          {open ? "Hide" : "Show"}
        </button>
      </div>
      <div class="join-body" id="join-body" hidden={!open}>
        {props.qr.length > 0 && <QrCode rows={props.qr} label={`QR code for ${props.url}`} />}
        <div class="join-text">
          <p class="muted small">
            Scan the code, or open this address in a browser on the same network:
          </p>
          <div class="join-actions">
            <code class="join-url" ref={text}>{breakable(props.url)}</code>
            <button type="button" class="secondary join-copy" onClick={copy}>Copy</button>
            <span class="muted small" role="status">{said}</span>
          </div>
          {LOOPBACK.test(props.url) && (
            <p class="warn-text small">
              Only this machine can open it: the jam is not on a LAN address.
            </p>
          )}
          {full && (
            <p class="muted small">
              The jam is full ({props.peers} of {props.maxPeers} peers): no one else can join.
            </p>
          )}
        </div>
      </div>
    </section>
  );
}
