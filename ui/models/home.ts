import { signal } from "@preact/signals";
import type { JamListing } from "../../session/commands.ts";

/** Home: the names last used, the port offered, the jams on the LAN, why we came back. */
export function createHomeModel() {
  return {
    hostName: signal(""),
    peerName: signal(""),
    sessionName: signal(""),
    address: signal(""),
    port: signal(7420),
    jams: signal<JamListing[]>([]),
    /** Why the app is back on Home (host gone, refused, port busy…), until dismissed. */
    message: signal<string | null>(null),
  };
}
export type HomeModel = ReturnType<typeof createHomeModel>;
