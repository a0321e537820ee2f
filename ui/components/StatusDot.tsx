/** A clock status: a coloured dot and always the word, so colour is never the only signal. */
const WORDS: Record<string, string> = { green: "in sync", yellow: "locking", red: "no clock" };

export function StatusDot(props: { color: string; label?: string }) {
  const word = props.label ?? WORDS[props.color] ?? props.color;
  return (
    <span class={`status status-${props.color}`}>
      <span class="dot" aria-hidden="true" />
      {word}
    </span>
  );
}
