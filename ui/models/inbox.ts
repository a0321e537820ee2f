import { signal } from "@preact/signals";

export interface InboxItem {
  id: number;
  peer: string;
  fileName: string;
  title: string;
  artist: string;
  state: string;
}

/** What this device asked the host for, and what became of it. */
export interface MyRequest {
  id: number;
  fileName: string;
  title: string;
  state: string;
  progress?: number;
  reason?: string;
}

/** Host: song requests waiting for a decision. Peer: its own requests. */
export function createInboxModel() {
  return {
    requests: signal<InboxItem[]>([]),
    mine: signal<MyRequest[]>([]),
  };
}
export type InboxModel = ReturnType<typeof createInboxModel>;
