import { connect } from "node:net";

/**
 * Loopback ports below 1024: the OS never hands them out for a port-0 bind (its ephemeral range starts
 * far above), so no Hangar, model replica or PostgreSQL that another test worker starts can take one
 * between this check and the test's use of it. A free port picked now and released could be. None is on
 * the Fetch standard's list of bad ports, which fetch refuses to call at all.
 */
const CANDIDATES = [4, 6, 8, 10, 12, 14];

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

/** An http://127.0.0.1:PORT URL where nothing listens (a connection is refused). */
export async function refusedUrl(): Promise<string> {
  for (const port of CANDIDATES) if (await refuses(port)) return `http://127.0.0.1:${port}`;
  throw new Error(`something listens on every one of the loopback ports ${CANDIDATES.join(", ")}`);
}
