/// <reference lib="dom" />
/**
 * The browser peer's entry (the page a phone opens from the jam server): the in-page engine is
 * the UI's client, so the same models and components show the peer screens.
 */
document.getElementById("app")!.textContent = "PhaseLock browser peer: coming up.";
