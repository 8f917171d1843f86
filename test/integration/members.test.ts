// Several Hangar processes on one PostgreSQL (API.md section 10), each with a data dir of its own as on
// separate machines: what one member received, any member builds and runs.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentStatus, gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { defaultMemberName, runningOn } from "../support/members.ts";
import { waitFor } from "../support/wait.ts";

const model = (n: number) => ({
  "model.mjs": `export default class M { predict(input) { return { n: ${n}, echo: input }; } }`,
});

const predictPath = (dep: { id: string; model: { id: string } }) =>
  `/models/${dep.model.id}/deployments/${dep.id}/predict`;

const MEMBERS = `{ members { name url alive startedAt lastSeenAt replicaCount } }`;

/** Two members of a new Hangar on one database. */
async function twoMembers(): Promise<[TestHangar, TestHangar]> {
  const first = await startHangar();
  return [first, await startHangar({ joining: first })];
}

// Only PostgreSQL can have several members: vitest.config.ts runs this file in integration-postgres only.
describe("members sharing one PostgreSQL", () => {
  let a: TestHangar;
  let b: TestHangar;

  beforeAll(async () => {
    [a, b] = await twoMembers();
  });

  afterAll(async () => {
    await b?.dispose();
    await a?.dispose();
  });

  it("builds every push, whichever member received it and whichever claims its build", async () => {
    // Before artifacts were shared, the member that claimed a push it had not received failed it
    // (BUILD_FAILED: missing from the data dir), about every other time.
    const pushed = [];
    for (let n = 0; n < 6; n++) {
      pushed.push(await pushFolder(n % 2 === 0 ? a : b, `shared-${n}`, await modelFolder(model(n))));
    }
    for (const dep of pushed) await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    const statuses = await Promise.all(pushed.map((dep) => deploymentStatus(b, dep.id)));
    expect(statuses).toEqual(pushed.map(() => "ACTIVE"));
  });

  it("lists its members by name and URL, each member's own bootstrap key working on all", async () => {
    const own = `hk_test_${randomBytes(16).toString("hex")}`;
    const c = await startHangar({
      joining: a,
      env: {
        HANGAR_MEMBER_NAME: "third",
        HANGAR_MEMBER_URL: "http://third.internal:9000",
        HANGAR_ADMIN_KEY: own,
      },
    });
    try {
      const { members } = await gql(b, MEMBERS);
      const byName = new Map(members.map((m: { name: string }) => [m.name, m]));
      expect(byName.get(defaultMemberName(a))).toMatchObject({ url: a.url, alive: true });
      expect(byName.get(defaultMemberName(b))).toMatchObject({ url: b.url, alive: true });
      expect(byName.get("third")).toMatchObject({ url: "http://third.internal:9000", alive: true });
      const { serverInfo } = await gql(c, "{ serverInfo { member } }");
      expect(serverInfo.member).toBe("third");
      // c's key, which a and b were never given, is a key of this Hangar: a accepts it, and c accepts a's.
      expect((await gql({ ...a, key: own }, "{ serverInfo { member } }")).serverInfo.member).toBe(
        defaultMemberName(a),
      );
      expect((await gql({ ...c, key: a.key }, "{ serverInfo { member } }")).serverInfo.member).toBe("third");
    } finally {
      await c.dispose();
    }
    // A member that stopped is listed as gone (for an hour), not as alive.
    const { members } = await gql(a, MEMBERS);
    expect(members.find((m: { name: string }) => m.name === "third")).toMatchObject({ alive: false });
  });

  it("says which member runs each replica", async () => {
    const dep = await pushFolder(b, "whose-replica", await modelFolder(model(7)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    const on = await runningOn(a, dep.id);
    expect(on).toHaveLength(1);
    expect([defaultMemberName(a), defaultMemberName(b)]).toContain(on[0]);
    expect(await runningOn(b, dep.id)).toEqual(on);
    const { members } = await gql(a, MEMBERS);
    expect(members.find((m: { name: string }) => m.name === on[0]).replicaCount).toBeGreaterThanOrEqual(1);
  });

  it("serves through every member, whichever runs the replicas, one replica for all", async () => {
    const dep = await pushFolder(a, "served-by-all", await modelFolder(model(5)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    const on = await runningOn(a, dep.id);
    expect(on).toHaveLength(1);
    // Through the member that does not run it the request is handed to the one that does: no second
    // replica starts, and the answer is the model's.
    for (const member of [a, b]) {
      const answer = await predict(member, predictPath(dep), { via: member.url });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ n: 5, echo: { via: member.url } });
    }
    expect(await runningOn(a, dep.id)).toEqual(on);
  });

  it("refuses a handed-over request without the members' secret", async () => {
    const dep = await pushFolder(a, "secret-path", await modelFolder(model(6)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    for (const secret of [undefined, "guess", a.key]) {
      for (const member of [a, b]) {
        const response = await fetch(`${member.url}/internal/v1/deployments/${dep.id}/predict`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${a.key}`,
            ...(secret ? { "x-hangar-member-secret": secret } : {}),
          },
          body: "{}",
        });
        expect(response.status).toBe(401);
        expect((await response.json()).error_code).toBe("unauthorized");
      }
    }
  });

  it("runs a deployment on a member whose disk never saw its upload", async () => {
    const dep = await pushFolder(a, "pushed-elsewhere", await modelFolder(model(42)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    // The member that received it goes away; a new one, with an empty disk, is all that is left.
    await a.stop();
    const c = await startHangar({ joining: b });
    try {
      await b.stop();
      const answer = await predict(c, predictPath(dep), { hello: "c" });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ n: 42, echo: { hello: "c" } });
      // The member that takes the deployment over starts it afresh (LOADING_MODEL), and says ACTIVE once
      // its replica is ready; the answer above can come a moment before that write.
      await waitForStatus(c, dep.id, "ACTIVE", 30_000);
    } finally {
      await c.dispose();
    }
  }, 120_000);
});

describe("a member that dies", () => {
  it("has its deployments run and serve on the others within 20 s of a SIGKILL", async () => {
    const [a, b] = await twoMembers();
    try {
      const dep = await pushFolder(a, "survivor", await modelFolder(model(9)));
      await waitForStatus(a, dep.id, "ACTIVE", 60_000);
      const [runner] = await runningOn(a, dep.id);
      const [dead, alive] = runner === defaultMemberName(a) ? [a, b] : [b, a];
      await dead.kill();
      const killedAt = Date.now();
      // On one machine the survivor sees the process end: the member is gone before its 15 s expiry.
      await waitFor(
        async () =>
          (await gql(alive, MEMBERS)).members.find(
            (m: { name: string }) => m.name === defaultMemberName(dead),
          )?.alive === false,
        { what: "the killed member listed as gone before its expiry", timeoutMs: 10_000 },
      );
      // API.md section 10: within 20 s its deployments run and serve on the others.
      await waitFor(async () => (await runningOn(alive, dep.id)).includes(defaultMemberName(alive)), {
        what: "the survivor to run the dead member's deployment",
        timeoutMs: 20_000,
      });
      const answer = await predict(alive, predictPath(dep), { after: "takeover" });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ n: 9, echo: { after: "takeover" } });
      expect(Date.now() - killedAt).toBeLessThan(20_000);
      // Nothing runs twice: the dead member's replica row is closed, the survivor's is the only one ready.
      expect(await runningOn(alive, dep.id)).toEqual([defaultMemberName(alive)]);
      const { members } = await gql(alive, MEMBERS);
      expect(members.find((m: { name: string }) => m.name === defaultMemberName(dead))).toMatchObject({
        alive: false,
      });
    } finally {
      await b.dispose();
      await a.dispose();
    }
  }, 120_000);

  it("is judged gone from another machine once it missed a heartbeat and its URL refuses connections", async () => {
    const [a, b] = await twoMembers();
    try {
      const dep = await pushFolder(a, "far-survivor", await modelFolder(model(10)));
      await waitForStatus(a, dep.id, "ACTIVE", 60_000);
      const [runner] = await runningOn(a, dep.id);
      const [dead, alive] = runner === defaultMemberName(a) ? [a, b] : [b, a];
      // As seen from another machine: no process record to watch, only its URL and its heartbeats.
      await blankProcessRecord(a, defaultMemberName(dead));
      await dead.kill();
      await waitFor(async () => (await isListedAlive(alive, dead)) === false, {
        what: "the killed member listed as gone before its 15 s expiry",
        timeoutMs: 10_000,
      });
      await waitFor(async () => (await runningOn(alive, dep.id)).includes(defaultMemberName(alive)), {
        what: "the survivor to run the dead member's deployment",
        timeoutMs: 10_000,
      });
      expect((await predict(alive, predictPath(dep), { far: true })).status).toBe(200);
    } finally {
      await b.dispose();
      await a.dispose();
    }
  }, 120_000);

  it("is not judged gone early while it hangs: its port still takes connections, so it waits for the expiry", async () => {
    const [a, b] = await twoMembers();
    try {
      await blankProcessRecord(a, defaultMemberName(b));
      b.process.kill("SIGSTOP");
      try {
        // Past a missed heartbeat and several takeover rounds (OVERDUE_MS 7 s, one a second), short of
        // the 15 s expiry: a refusal is the only early verdict, and a stopped process refuses nothing.
        const until = Date.now() + 11_000;
        while (Date.now() < until) {
          expect(await isListedAlive(a, b)).toBe(true);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      } finally {
        b.process.kill("SIGCONT");
      }
    } finally {
      await b.dispose();
      await a.dispose();
    }
  }, 120_000);
});

/** Blanks a member's process records, so that no member can see its process end (as on another machine). */
async function blankProcessRecord(hangar: TestHangar, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: hangar.databaseUrl ?? undefined });
  await client.connect();
  try {
    await client.query(`UPDATE "Member" SET process = '' WHERE name = $1`, [name]);
  } finally {
    await client.end();
  }
}

/** Whether `asker` lists `member` as alive (undefined: not listed). */
async function isListedAlive(asker: TestHangar, member: TestHangar): Promise<boolean | undefined> {
  const { members } = await gql(asker, MEMBERS);
  return members.find((m: { name: string }) => m.name === defaultMemberName(member))?.alive;
}
