import net from "node:net";
import { describe, expect, it } from "vitest";
import { refusesConnections } from "../../src/controllers/member-probe.ts";

/** A listener on a free loopback port; `close` frees it. */
async function listening(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((socket) => socket.on("error", () => {}));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("refusesConnections", () => {
  it("is true only where nothing listens: a member whose process is gone", async () => {
    const server = await listening();
    const url = `http://127.0.0.1:${server.port}`;
    expect(await refusesConnections(url)).toBe(false);
    await server.close();
    expect(await refusesConnections(url)).toBe(true);
  });

  it("is false for a listener that takes the connection and never answers (a hung member, a proxy)", async () => {
    const server = await listening();
    try {
      expect(await refusesConnections(`http://127.0.0.1:${server.port}`, 200)).toBe(false);
    } finally {
      await server.close();
    }
  });

  it("is false for a URL it cannot read", async () => {
    expect(await refusesConnections("not a url")).toBe(false);
  });
});
