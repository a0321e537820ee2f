import { signal } from "@preact/signals";
import type { Command } from "../../session/commands.ts";

export interface Notice {
  id: number;
  level: "info" | "warn" | "error";
  message: string;
  /** Buttons offered with the notice (e.g. "Retry" / "Play without them"). */
  actions?: { label: string; command: Command }[];
}

/** At most this many notices are kept; the oldest go first. */
export const MAX_NOTICES = 6;

export function createNoticesModel() {
  return { list: signal<Notice[]>([]), nextId: { value: 1 } };
}
export type NoticesModel = ReturnType<typeof createNoticesModel>;

export function pushNotice(m: NoticesModel, n: Omit<Notice, "id">): void {
  const list = [...m.list.value, { ...n, id: m.nextId.value++ }];
  m.list.value = list.slice(-MAX_NOTICES);
}

export function dismissNotice(m: NoticesModel, id: number): void {
  m.list.value = m.list.value.filter((n) => n.id !== id);
}
