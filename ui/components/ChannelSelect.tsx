import type { ChannelMode } from "../../session/commands.ts";

const MODES: ChannelMode[] = ["stereo", "left", "right", "mono"];

/** Which channel a device plays (a stereo pair is two devices, one on each side). */
export function ChannelSelect(props: {
  label: string;
  value: string;
  onChange: (mode: ChannelMode) => void;
}) {
  return (
    <select
      aria-label={props.label}
      value={props.value}
      onChange={(e) => props.onChange(e.currentTarget.value as ChannelMode)}
    >
      {MODES.map((m) => <option key={m} value={m}>{m}</option>)}
    </select>
  );
}
