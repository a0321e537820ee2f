/**
 * Ports for test jams. A jam listens on TCP and UDP with one number, so a port is free only
 * when both are. Candidates come from below the kernel's ephemeral range (32768 and up), where
 * no outgoing connection of another test can take the port between this probe and the listen.
 */

const LOW = 20000;
const SPAN = 12000;
const handedOut = new Set<number>();

/** A port on which nothing listens now (TCP and UDP, all addresses), never handed out twice. */
export function freePort(): number {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * SPAN);
    if (handedOut.has(port)) continue;
    try {
      Deno.listen({ hostname: "0.0.0.0", port }).close();
      Deno.listenDatagram({ hostname: "0.0.0.0", port, transport: "udp" }).close();
    } catch {
      continue;
    }
    handedOut.add(port);
    return port;
  }
  throw new Error(`No free TCP+UDP port between ${LOW} and ${LOW + SPAN} after 200 tries`);
}
