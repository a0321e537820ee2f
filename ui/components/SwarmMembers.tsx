import type { SwarmMemberView } from "../../swarm/view.ts";
import { percent } from "./format.ts";
import { StatusDot } from "./StatusDot.tsx";

/** "7 members", "1 member". */
export function memberCount(n: number): string {
  return `${n} member${n === 1 ? "" : "s"}`;
}

/** How a member is reached: a data channel to it, and its clock. */
function linkDot(m: SwarmMemberView) {
  if (m.me) return <StatusDot color={m.locked ? "green" : "yellow"} label="this device" />;
  if (!m.linked) return <StatusDot color="red" label="not linked" />;
  return (
    <StatusDot
      color={m.locked ? "green" : "yellow"}
      label={m.locked ? "linked" : "syncing"}
    />
  );
}

/** Who is in the swarm: who directs, who is linked, and how far each has the selected file. */
export function SwarmMembers(props: { members: SwarmMemberView[]; fileSelected: boolean }) {
  const ms = props.members;
  return (
    <section class="card peers swarm-members" aria-label="Members">
      <h2>
        Members <span class="count">{ms.length}</span>
      </h2>
      <ul>
        {ms.map((m) => (
          <li key={m.id} class="peer" aria-label={m.name}>
            <div class="peer-top">
              <span class="peer-name">
                {m.name}
                {m.me && <span class="muted">(you)</span>}
                {m.director && <span class="badge badge-director">director</span>}
              </span>
              {linkDot(m)}
            </div>
            {props.fileSelected && (
              <div class="peer-facts muted">
                <span title="Of the selected file">
                  {m.progress === undefined
                    ? "selected file: —"
                    : m.progress >= 1
                    ? "has the selected file"
                    : `selected file: ${percent(m.progress)}`}
                </span>
              </div>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
