/// <reference lib="dom" />
/**
 * The desktop UI's entry: the token comes in the URL fragment (never sent to a server), is kept
 * in memory and removed from the address bar; then the control WebSocket feeds the models.
 */
import { render } from "preact";
import { modelsFor } from "./models/app.ts";
import { App } from "./components/App.tsx";
import { connectControl } from "./ws_client.ts";

const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
history.replaceState(null, "", location.pathname);
if (!token) {
  document.body.textContent = "Open PhaseLock from its window, or the address it printed.";
} else {
  const client = connectControl(token);
  const { models } = modelsFor(client);
  render(<App models={models} client={client} />, document.getElementById("app")!);
}
