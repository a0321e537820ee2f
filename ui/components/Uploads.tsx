import { signal } from "@preact/signals";
import { percent } from "./format.ts";

export interface Upload {
  id: number;
  name: string;
  progress: number;
  error?: string;
}

/** Files on their way from the page to the engine (UI-local state, not engine state). */
export function createUploadsModel() {
  return { list: signal<Upload[]>([]), nextId: { value: 1 } };
}
export type UploadsModel = ReturnType<typeof createUploadsModel>;

export function Uploads(props: { model: UploadsModel }) {
  const list = props.model.list.value;
  if (!list.length) return null;
  return (
    <ul class="uploads" aria-label="Files being added">
      {list.map((u) => (
        <li key={u.id} class={u.error ? "upload failed" : "upload"}>
          <span class="upload-name">{u.name}</span>
          <span class="muted">{u.error ?? `sending ${percent(u.progress)}`}</span>
          {!u.error && <progress value={u.progress} max={1} aria-label={`Sending ${u.name}`} />}
        </li>
      ))}
    </ul>
  );
}
