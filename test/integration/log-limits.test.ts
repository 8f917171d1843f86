/**
 * A replica's output as it reaches the deployment's logs (API.md section 8): long lines cut with
 * "[cut]", floods over 200 lines a second dropped with one "[N lines dropped]" line, control characters
 * as U+FFFD, so that one model's bytes never cost another's lines.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

/** Writes what it is asked to, on stdout, in one go. */
const NOISY_MODEL = {
  "model.mjs": `export default class M {
  predict(input) {
    if (input.raw) process.stdout.write(Buffer.from(input.raw, "base64"));
    for (let i = 0; i < (input.burst ?? 0); i++) process.stdout.write("burst " + i + "\\n");
    if (input.say) console.log(input.say);
    return { ok: true };
  }
}`,
};

let hangar: TestHangar;
let noisy: { id: string; model: { id: string } };
let quiet: { id: string; model: { id: string } };

beforeAll(async () => {
  hangar = await startHangar();
  noisy = await pushFolder(hangar, "noisy", await modelFolder(NOISY_MODEL));
  quiet = await pushFolder(hangar, "quiet", await modelFolder(NOISY_MODEL));
  await Promise.all([waitForStatus(hangar, noisy.id, "ACTIVE"), waitForStatus(hangar, quiet.id, "ACTIVE")]);
});

afterAll(async () => {
  await hangar?.dispose();
});

const pathOf = (d: { id: string; model: { id: string } }) =>
  `/models/${d.model.id}/deployments/${d.id}/predict`;

async function lines(deploymentId: string): Promise<{ at: string; stream: string; line: string }[]> {
  const data = await gql(
    hangar,
    `query($id: ID!) { deployment(id: $id) { logs(last: 2000) { at stream line } } }`,
    { id: deploymentId },
  );
  return data.deployment.logs;
}

describe("replica output", () => {
  it("stores a NUL as U+FFFD, and another deployment's lines written with it are kept", async () => {
    const raw = Buffer.from("before\u0000after\u0007bell\ttab\n").toString("base64");
    await Promise.all([
      predict(hangar, pathOf(noisy), { raw }),
      predict(hangar, pathOf(quiet), { say: "quiet line" }),
    ]);
    await waitFor(
      async () =>
        (await lines(noisy.id)).some((l) => l.line === "before\uFFFDafter\uFFFDbell\ttab") &&
        (await lines(quiet.id)).some((l) => l.line === "quiet line"),
      { what: "both deployments' lines" },
    );
  });

  it("cuts a line over 16 KiB to 16 KiB ending with [cut], and keeps the next line whole", async () => {
    const raw = Buffer.from(`${"a".repeat(20 * 1024)}\nafter the long one\n`).toString("base64");
    await predict(hangar, pathOf(noisy), { raw });
    const found = await waitFor(
      async () => {
        const all = await lines(noisy.id);
        const long = all.find((l) => l.line.startsWith("aaaa"));
        return long && all.some((l) => l.line === "after the long one") ? long : null;
      },
      { what: "the cut line" },
    );
    expect(found.line).toBe(`${"a".repeat(16 * 1024 - 5)}[cut]`);
    expect(found.stream).toBe("stdout");
  });

  it("keeps at most 200 lines a second and says how many were dropped", async () => {
    await predict(hangar, pathOf(noisy), { burst: 1000 });
    const counted = await waitFor(
      async () => {
        const all = await lines(noisy.id);
        const kept = all.filter((l) => l.line.startsWith("burst ")).length;
        const dropped = all
          .map((l) => /^\[(\d+) lines dropped\]$/.exec(l.line)?.[1])
          .reduce((sum, n) => sum + Number(n ?? 0), 0);
        // The notice comes when the next second starts, output or not. The count may include a
        // line of the model server's own that fell in the same second as the burst.
        return kept + dropped >= 1000 ? { kept, dropped, all } : null;
      },
      { what: "the dropped-lines notice" },
    );
    // However many seconds a loaded machine spreads the burst over, no second keeps more than 200.
    const perSecond = new Map<number, number>();
    for (const l of counted.all.filter((l) => l.line.startsWith("burst "))) {
      const second = Math.floor(Date.parse(l.at) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(200);
    expect(counted.dropped).toBeGreaterThanOrEqual(1000 - 200 * perSecond.size);
    expect(counted.dropped).toBeGreaterThan(0);
    const notices = counted.all.filter((l) => l.line.endsWith("lines dropped]"));
    expect(notices.every((l) => l.stream === "system")).toBe(true);
    // The first lines are the ones kept, in order.
    expect(counted.all.find((l) => l.line.startsWith("burst "))?.line).toBe("burst 0");
  });
});
