/** Transport symbols drawn as shapes, so they look the same whatever fonts a machine has. */
const PATHS = {
  play: "M8 5v14l11-7z",
  pause: "M6 5h4v14H6zM14 5h4v14h-4z",
  stop: "M6 6h12v12H6z",
  skip: "M5 5v14l10-7zM16 5h3v14h-3z",
} as const;

export function Icon(props: { name: keyof typeof PATHS; size?: number }) {
  const s = props.size ?? 20;
  return (
    <svg width={s} height={s} viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d={PATHS[props.name]} fill="currentColor" />
    </svg>
  );
}
