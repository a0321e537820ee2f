/// <reference lib="dom" />
import { useState } from "preact/hooks";
import { MAX_SHARED_FILES } from "../../swarm/protocol.ts";
import type { SwarmActions, SwarmFileView, SwarmView } from "../../swarm/view.ts";
import { clockTime, percent } from "./format.ts";

/** 3_200_000 → "3.2 MB" (decimal units, like file managers and phones show them). */
export function humanSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB"];
  let v = bytes / 1000;
  let u = 0;
  while (v >= 999.95 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v < 100 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** "from 3 members", "from 1 member". */
export function fromMembers(n: number): string {
  return `from ${n} member${n === 1 ? "" : "s"}`;
}

/** Why this device may not share another file, or null. */
export function shareBlocker(files: SwarmFileView[]): string | null {
  const mine = files.filter((f) => f.mine).length;
  return mine >= MAX_SHARED_FILES ? `You share ${MAX_SHARED_FILES} files already (the most)` : null;
}

/** The words after a file's size: whose it is, how far along, where from. */
function FileFacts(props: { f: SwarmFileView }) {
  const f = props.f;
  const facts = [];
  if (f.mine) facts.push(<span class="badge badge-yours">yours</span>);
  if (f.seeded) facts.push(<span class="swarm-seeded">seeded</span>);
  else if (!f.enabled) facts.push(<span>off</span>);
  else if (f.queued) {
    facts.push(<span title="Fetched once the files before it are done">queued</span>);
  } else facts.push(<span>{percent(f.progress)}</span>);
  if (!f.mine && f.sources > 0) facts.push(<span>{fromMembers(f.sources)}</span>);
  else if (!f.mine && !f.seeded && f.enabled) facts.push(<span>no one offers it now</span>);
  if (f.seeded && f.enabled && !f.playable) facts.push(<span>preparing…</span>);
  return <>{facts}</>;
}

/**
 * The swarm's files: size, verified progress, whether this device seeds it, a switch to fetch
 * (and offer) it or not, and for the director the Select button. Sharing a file from this
 * device is here too.
 */
export function SwarmFiles(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const a = props.actions;
  const [sharing, setSharing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const blocked = shareBlocker(v.files);
  const share = async (file: File) => {
    setSharing(true);
    setError(null);
    try {
      setError(await a.share(file));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setSharing(false);
    }
  };
  return (
    <section class="card swarm-files" aria-label="Files">
      <div class="swarm-files-head">
        <h2>
          Files <span class="count">{v.files.length}</span>
        </h2>
        <label class={`swarm-share${blocked || sharing ? " disabled" : ""}`}>
          {sharing ? "Sharing…" : "Share a file"}
          <input
            type="file"
            class="sr"
            accept=".mp3,audio/mpeg"
            multiple={false}
            aria-label="Share a file"
            aria-describedby={blocked ? "swarm-share-why" : undefined}
            disabled={!!blocked || sharing}
            onChange={(e) => {
              const file = e.currentTarget.files?.[0];
              e.currentTarget.value = "";
              if (file) void share(file);
            }}
          />
        </label>
      </div>
      {blocked && <p id="swarm-share-why" class="muted small swarm-why">{blocked}</p>}
      {error && <p class="warn-text" role="alert">{error}</p>}
      {v.files.length === 0 && (
        <p class="muted">
          No files yet. Share an MP3 from this device: everyone in the swarm fetches it from you.
        </p>
      )}
      <ul class={`swarm-file-list${v.iAmDirector ? " directing" : ""}`}>
        {v.files.map((f) => {
          const selected = v.transport.file === f.id;
          return (
            <li
              key={f.id}
              class={`swarm-file${f.enabled ? "" : " off"}${selected ? " selected" : ""}`}
              aria-label={f.name}
            >
              <div class="swarm-file-text">
                <span class="swarm-file-name">{f.name}</span>
                <span class="swarm-file-facts muted">
                  <span>{humanSize(f.sizeBytes)}</span>
                  {f.durationSec !== undefined && <span>{clockTime(f.durationSec)}</span>}
                  <FileFacts f={f} />
                  {selected && !v.iAmDirector && (
                    <span class="badge badge-playing">
                      {v.transport.playing ? "playing" : "selected"}
                    </span>
                  )}
                </span>
                <div
                  class="swarm-bar"
                  role="progressbar"
                  aria-label={`${f.name} progress`}
                  aria-valuemin={0}
                  aria-valuemax={100}
                  aria-valuenow={Math.round(f.progress * 100)}
                  aria-valuetext={percent(f.progress)}
                >
                  <div class="swarm-fill" style={{ width: `${f.progress * 100}%` }} />
                </div>
              </div>
              <div class="swarm-file-controls">
                {v.iAmDirector && (
                  <button
                    type="button"
                    class={selected ? "swarm-select on" : "swarm-select"}
                    aria-pressed={selected}
                    onClick={() => !selected && a.select(f.id)}
                  >
                    {selected ? "Selected" : "Select"}
                  </button>
                )}
                <input
                  type="checkbox"
                  class="swarm-switch"
                  checked={f.enabled}
                  aria-label={`Enable ${f.name}`}
                  title={f.mine ? "Offer this file to the swarm" : "Fetch this file"}
                  onChange={(e) => a.setEnabled(f.id, e.currentTarget.checked)}
                />
              </div>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
