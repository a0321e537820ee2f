/// <reference lib="dom" />
import { useEffect, useRef, useState } from "preact/hooks";
import { MAX_NAME_LENGTH } from "../../swarm/protocol.ts";
import type { SwarmActions, SwarmView } from "../../swarm/view.ts";

/**
 * Swarm mode's Home: a swarm key and a name. The Join tap also unlocks audio (iOS needs a
 * gesture), so `join` is called from the submit handler itself.
 */
export function SwarmJoin(props: { view: SwarmView; actions: SwarmActions }) {
  const v = props.view;
  const joining = v.phase === "joining";
  // Back Home after a swarm, its key and my name are offered again (when the view has them).
  const [key, setKey] = useState(v.swarmName);
  const [name, setName] = useState(v.me?.name ?? v.savedName ?? "");
  const typed = useRef(false);
  const offered = v.me?.name ?? v.savedName;
  useEffect(() => {
    if (offered && !typed.current) setName(offered);
  }, [offered]);
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    if (joining) return;
    if (!key.trim()) return setProblem("Type the swarm key your friends use.");
    if (!name.trim()) return setProblem("Say who you are: your name.");
    setProblem(null);
    props.actions.join(key.trim(), name.trim());
  };
  return (
    <main class="home swarm-join">
      <header class="home-head">
        <h1 class="brand">PhaseLock</h1>
        <p class="tagline">Many devices, one sound.</p>
      </header>
      {v.homeMessage && (
        <div class="banner" role="alert">
          <span>{v.homeMessage}</span>
        </div>
      )}
      {problem && <p class="form-problem" role="alert">{problem}</p>}
      <form class="card form" onSubmit={submit} aria-label="Join a swarm" noValidate>
        <h2>Join a swarm</h2>
        <p class="muted small swarm-explain">
          Everyone who types the same key is in the same swarm. The server only sees a hash of the
          key, and never your music: files go from device to device.
        </p>
        <label>
          Swarm key
          <input
            type="text"
            value={key}
            name="swarm-key"
            placeholder="the key your friends use"
            autocomplete="off"
            autoCapitalize="off"
            autoCorrect="off"
            spellcheck={false}
            enterKeyHint="next"
            onInput={(e) => setKey(e.currentTarget.value)}
          />
        </label>
        <label>
          Your name
          <input
            value={name}
            maxLength={MAX_NAME_LENGTH}
            placeholder="Sam"
            name="name"
            autocomplete="nickname"
            enterKeyHint="go"
            onInput={(e) => {
              typed.current = true;
              setName(e.currentTarget.value);
            }}
          />
        </label>
        <div class="form-actions">
          {/* Named "Join" while busy too: the visible word says what is happening. */}
          <button
            type="submit"
            class="primary big"
            disabled={joining}
            aria-label="Join"
            aria-busy={joining}
          >
            {joining ? "Joining…" : "Join"}
          </button>
        </div>
        <p class="muted small">
          Keep this page open while you listen: the music plays from this page.
        </p>
      </form>
    </main>
  );
}
