/// <reference lib="dom" />
import { useState } from "preact/hooks";
import type { Command } from "../../session/commands.ts";
import { PROTOCOL_VERSION } from "../../session/protocol.ts";
import type { HomeModel } from "../models/home.ts";

/** Home: create a jam, or join one found on the LAN or typed as IP:port. */
export function Home(props: { model: HomeModel; send: (c: Command) => void }) {
  const m = props.model;
  const [mode, setMode] = useState<"choose" | "create" | "join">("choose");
  const [session, setSession] = useState(m.sessionName.value);
  const [hostName, setHostName] = useState(m.hostName.value);
  const [port, setPort] = useState(String(m.port.value));
  const [peerName, setPeerName] = useState(m.peerName.value);
  const [address, setAddress] = useState(m.address.value);
  const [problem, setProblem] = useState<string | null>(null);

  const create = (e: Event) => {
    e.preventDefault();
    const p = Number(port);
    if (!session.trim()) return setProblem("Give the jam a session name.");
    if (!hostName.trim()) return setProblem("Say who you are: your name.");
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      return setProblem("The port must be a whole number from 1 to 65535.");
    }
    setProblem(null);
    props.send({ cmd: "create", session: session.trim(), name: hostName.trim(), port: p });
  };
  const join = (to: string) => {
    if (!peerName.trim()) return setProblem("Say who you are: your name.");
    const port = Number(/:(\d{1,5})$/.exec(to.trim())?.[1]);
    if (!/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(to.trim()) || port < 1 || port > 65535) {
      return setProblem("Give the host address as IP:port, e.g. 192.168.1.20:7420.");
    }
    setProblem(null);
    props.send({ cmd: "join", address: to.trim(), name: peerName.trim() });
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
          <button
            type="button"
            aria-label="Dismiss"
            class="notice-close"
            onClick={() => (m.message.value = null)}
          >
            ×
          </button>
        </div>
      )}
      {problem && <p class="form-problem" role="alert">{problem}</p>}
      {mode === "choose" && (
        <div class="home-choices">
          <button type="button" class="big primary" onClick={() => setMode("create")}>
            Create Jam
          </button>
          <button type="button" class="big secondary" onClick={() => setMode("join")}>
            Join Jam
          </button>
        </div>
      )}
      {mode === "create" && (
        <form class="card form" onSubmit={create} aria-label="Create a jam">
          <h2>Create a jam</h2>
          <label>
            Session name
            <input
              value={session}
              maxLength={40}
              placeholder="Friday Night Vibes"
              autofocus
              onInput={(e) => setSession(e.currentTarget.value)}
            />
          </label>
          <label>
            Your name
            <input
              value={hostName}
              maxLength={40}
              placeholder="Alex"
              onInput={(e) => setHostName(e.currentTarget.value)}
            />
          </label>
          <label>
            Port
            <input
              value={port}
              inputMode="numeric"
              onInput={(e) => setPort(e.currentTarget.value)}
            />
          </label>
          <div class="form-actions">
            <button type="button" class="secondary" onClick={() => setMode("choose")}>Back</button>
            <button type="submit" class="primary">Create Jam</button>
          </div>
        </form>
      )}
      {mode === "join" && (
        <section class="card form" aria-label="Join a jam">
          <h2>Join a jam</h2>
          <label>
            Your name
            <input
              value={peerName}
              maxLength={40}
              placeholder="Sam"
              autofocus
              onInput={(e) => setPeerName(e.currentTarget.value)}
            />
          </label>
          <h3>On this network</h3>
          <ul class="jams" aria-label="Jams on this network">
            {m.jams.value.length === 0 && <li class="muted">Looking for jams… (none found yet)</li>}
            {m.jams.value.map((j) => (
              <li key={`${j.address}:${j.port}`}>
                <button
                  type="button"
                  class="jam"
                  disabled={j.protocolVersion !== PROTOCOL_VERSION}
                  title={j.protocolVersion !== PROTOCOL_VERSION
                    ? "This jam runs another version of PhaseLock"
                    : undefined}
                  onClick={() => join(`${j.address}:${j.port}`)}
                >
                  <span class="jam-name">{j.session}</span>
                  <span class="muted">
                    {` — hosted by ${j.host} — ${j.peers}/${j.maxPeers} peers`}
                    {j.protocolVersion !== PROTOCOL_VERSION && " — another PhaseLock version"}
                  </span>
                </button>
              </li>
            ))}
          </ul>
          <form
            class="join-direct"
            onSubmit={(e) => {
              e.preventDefault();
              join(address);
            }}
          >
            <label>
              Host address
              <input
                value={address}
                placeholder="192.168.1.20:7420"
                onInput={(e) => setAddress(e.currentTarget.value)}
              />
            </label>
            <div class="form-actions">
              <button type="button" class="secondary" onClick={() => setMode("choose")}>
                Back
              </button>
              <button type="submit" class="primary">Join</button>
            </div>
          </form>
        </section>
      )}
    </main>
  );
}
