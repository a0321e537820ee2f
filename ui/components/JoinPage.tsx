/// <reference lib="dom" />
import { useState } from "preact/hooks";
import type { HomeModel } from "../models/home.ts";

/**
 * A browser's Home: the page was opened from the host's address, so there is only one jam to
 * join. Asks for a display name; the Join tap also unlocks audio (iOS needs a gesture).
 */
export function JoinPage(props: { model: HomeModel; onJoin: (name: string) => void }) {
  const m = props.model;
  const [name, setName] = useState(m.peerName.value);
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    if (!name.trim()) return setProblem("Say who you are: your name.");
    setProblem(null);
    props.onJoin(name.trim());
  };
  return (
    <main class="home">
      <header class="home-head">
        <h1 class="brand">PhaseLock</h1>
        <p class="tagline">Many devices, one sound.</p>
      </header>
      {m.message.value && (
        <div class="banner" role="alert">
          <span>{m.message.value}</span>
        </div>
      )}
      {problem && <p class="form-problem" role="alert">{problem}</p>}
      <form class="card form" onSubmit={submit} aria-label="Join the jam">
        <h2>Join the jam</h2>
        <label>
          Your name
          <input
            value={name}
            maxLength={40}
            placeholder="Sam"
            name="name"
            autocomplete="nickname"
            enterKeyHint="go"
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <div class="form-actions">
          <button type="submit" class="primary big">Join</button>
        </div>
        <p class="muted small">
          Keep this page open while you listen: the music plays from this page.
        </p>
      </form>
    </main>
  );
}
