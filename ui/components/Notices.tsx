import type { Command } from "../../session/commands.ts";
import { dismissNotice, type NoticesModel } from "../models/notices.ts";
import { NoticeList } from "./NoticeList.tsx";

/** The jam's notices and errors, newest last; a notice's buttons send their commands. */
export function Notices(props: { model: NoticesModel; send: (c: Command) => void }) {
  return (
    <NoticeList
      notices={props.model.list.value.map((n) => ({
        id: n.id,
        level: n.level,
        text: n.message,
        ...(n.actions
          ? {
            actions: n.actions.map((a) => ({ label: a.label, run: () => props.send(a.command) })),
          }
          : {}),
      }))}
      dismiss={(id) => dismissNotice(props.model, id)}
    />
  );
}
