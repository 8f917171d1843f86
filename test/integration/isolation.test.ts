// The replica fence (API.md section 9), tried as the author of a pushed model would: each test's model
// attempts something a replica must not be able to do, and the test asserts the refusal. Runs where
// the fence can be put up (CI as root installs bubblewrap and slirp4netns: .ci/run).
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, statSync } from "node:fs";
import { readdir } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

const fenceable = spawnSync("bwrap", ["--version"]).status === 0;
const asRoot = process.getuid?.() === 0;

/** Everything a hostile model tries; it reports what happened instead of failing. */
const HOSTILE = `
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";

const attempt = (fn) => { try { return { ok: true, value: fn() }; } catch (e) { return { ok: false, code: e.code ?? String(e) }; } };
const connect = (host, port) => new Promise((resolve) => {
  const socket = net.connect(port, host);
  const done = (outcome) => { socket.destroy(); resolve(outcome); };
  socket.once("connect", () => done("connected"));
  socket.once("error", (e) => done(e.code));
  setTimeout(() => done("timeout"), 3000);
});

/** What a plain HTTP GET to host:port answers, or why there was no answer. */
const httpGet = (host, port) => new Promise((resolve) => {
  const socket = net.connect(port, host);
  let text = "";
  const done = (outcome) => { socket.destroy(); resolve(outcome); };
  socket.once("connect", () => socket.write("GET /predict HTTP/1.0\\r\\nhost: x\\r\\n\\r\\n"));
  socket.on("data", (chunk) => { text += chunk; });
  socket.once("end", () => done(text));
  socket.once("error", (e) => done(e.code));
  setTimeout(() => done(text || "timeout"), 3000);
});

export default class M {
  constructor({ config }) { this.config = config; }
  async predict(input) {
    const { dataDir, hangarPort } = this.config;
    if (input.action === "probe") {
      const secrets = [];
      const pids = readdirSync("/proc").filter((p) => /^\\d+$/.test(p));
      for (const pid of pids) {
        for (const file of ["environ", "cmdline"]) {
          const text = attempt(() => readFileSync("/proc/" + pid + "/" + file, "latin1"));
          if (text.ok && /HANGAR_ADMIN_KEY|DATABASE_URL|hk_test_/.test(text.value)) secrets.push(pid + "/" + file);
        }
      }
      return {
        uid: process.getuid(),
        dataDir: existsSync(dataDir),
        processes: pids.length,
        secrets,
        env: Object.keys(process.env).sort(),
        writeOwnCode: attempt(() => writeFileSync(new URL("./model.mjs", import.meta.url), "export default 1")),
        writeTmp: attempt(() => writeFileSync(os.tmpdir() + "/x", "x")),
        writeHome: attempt(() => writeFileSync(process.env.HOME + "/x", "x")),
        writeShm: attempt(() => writeFileSync("/dev/shm/x", "x")),
        // The usual devices work as they do outside.
        devices: attempt(() => {
          writeFileSync("/dev/null", "x");
          const fd = openSync("/dev/urandom", "r");
          readSync(fd, Buffer.alloc(16));
          closeSync(fd);
        }),
        // Every folder outside its tmpfs HOME and TMPDIR it could write a file into.
        writable: ["/", "/run", "/etc", "/dev", "/hangar", "/code", "/usr", "/var"].filter(
          (dir) => attempt(() => writeFileSync(dir + "/probe", "x")).ok,
        ),
        hangarOnLoopback: await connect("127.0.0.1", hangarPort),
        hangarThroughGateway: await connect("10.0.2.2", hangarPort),
      };
    }
    if (input.action === "reach") {
      const answers = {};
      for (const host of input.hosts) answers[host] = await httpGet(host, input.port);
      return answers;
    }
    if (input.action === "burn") {
      // Busy for input.ms of wall time; the CPU time it got says what share of a core it was allowed.
      const cpu = process.cpuUsage();
      const started = performance.now();
      while (performance.now() - started < input.ms) {}
      const used = process.cpuUsage(cpu);
      return { cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - started };
    }
    if (input.action === "fork") {
      const children = [];
      let refused = 0;
      for (let i = 0; i < input.count; i++) {
        const child = spawn("sleep", ["30"], { stdio: "ignore" });
        child.once("error", () => { refused++; });
        children.push(child);
      }
      await new Promise((r) => setTimeout(r, 500));
      const running = children.filter((c) => c.pid !== undefined && c.exitCode === null).length;
      for (const c of children) c.kill("SIGKILL");
      return { running, refused };
    }
    if (input.action === "hog") {
      const hold = [];
      for (let i = 0; i < 64; i++) hold.push(Buffer.alloc(16 * 1024 * 1024, 1));
      return { held: hold.length };
    }
    return {};
  }
}
`;

let hangar: TestHangar;
let modelId = "";
let deploymentId = "";

async function logsOf(id: string): Promise<string> {
  const data = await gql(hangar, "query($id: ID!) { deployment(id: $id) { logs(last: 500) { line } } }", {
    id,
  });
  return data.deployment.logs.map((l: { line: string }) => l.line).join("\n");
}

async function hostile(name: string, manifest: Record<string, unknown> = {}) {
  // What an attacker could know; never the key itself (the model looks for any key's shape instead).
  const config = { dataDir: hangar.dataDir, hangarPort: Number(new URL(hangar.url).port) };
  const dep = await pushFolder(
    hangar,
    name,
    await modelFolder({ "model.mjs": HOSTILE, "hangar.json": JSON.stringify({ ...manifest, config }) }),
  );
  await waitForStatus(hangar, dep.id, "ACTIVE");
  return dep;
}

/** What a fenced replica's probe must find, whoever runs Hangar. */
function expectFenced(seen: Record<string, unknown>) {
  expect(seen.uid).not.toBe(0);
  expect(seen.dataDir).toBe(false);
  // Its own PID namespace: bubblewrap's init and the runner, nothing of Hangar's.
  expect(seen.processes).toBeLessThanOrEqual(3);
  expect(seen.secrets).toEqual([]);
  for (const name of seen.env as string[]) {
    expect(name).toMatch(
      /^(PATH|LANG|HOME|TMPDIR|PORT|HANGAR_ENVIRONMENT|HANGAR_REPLICA_ID|HANGAR_DEPLOYMENT_ID|HANGAR_MODEL_\w+)$/,
    );
  }
  expect(seen.writeOwnCode).toEqual({ ok: false, code: "EROFS" });
  expect(seen).toMatchObject({
    writeTmp: { ok: true },
    writeHome: { ok: true },
    writeShm: { ok: true },
    devices: { ok: true },
  });
  // Nothing of the host to write to (its channel socket came in bound, as a descriptor).
  expect(seen.writable).toEqual([]);
  // Hangar's port is not reachable: not on its own loopback, not through the way out.
  expect(seen.hangarOnLoopback).not.toBe("connected");
  expect(seen.hangarThroughGateway).not.toBe("connected");
}

// The way out is the machine's own: a listener on an address of it that is not loopback stands for
// anything outside.
const outward = Object.values(os.networkInterfaces())
  .flat()
  .find((address) => address && address.family === "IPv4" && !address.internal)?.address;

/** The replica behind predictPath opens a connection to a listener outside its sandbox. */
async function expectReachesOut(target: TestHangar, predictPath: string) {
  const listener = net.createServer((socket) => socket.end("HTTP/1.0 200 OK\r\n\r\nfrom outside"));
  await new Promise<void>((resolve) => listener.listen(0, outward, resolve));
  try {
    const { port } = listener.address() as net.AddressInfo;
    const tried = await predict(target, predictPath, { action: "reach", port, hosts: [outward] });
    expect(tried.body[outward as string]).toContain("from outside");
  } finally {
    listener.close();
  }
}

describe.skipIf(!fenceable)("the replica fence", () => {
  beforeAll(async () => {
    // A low process cap so that a fork loop meets it quickly.
    hangar = await startHangar({ env: { HANGAR_REPLICA_PIDS: "48" } });
    const dep = await hostile("hostile");
    modelId = dep.model.id;
    deploymentId = dep.id;
  });

  afterAll(async () => {
    await hangar?.dispose();
  });

  const path_ = () => `/models/${modelId}/deployments/${deploymentId}/predict`;

  it("says in serverInfo that replicas are fenced and limited", async () => {
    const { serverInfo } = await gql(hangar, "{ serverInfo { sandbox limits } }");
    expect(serverInfo).toEqual({ sandbox: "FENCED", limits: asRoot });
  });

  it("hides Hangar's data dir, processes and secrets, and keeps the code read-only", async () => {
    const answer = await predict(hangar, path_(), { action: "probe" });
    expect(answer.status).toBe(200);
    if (asRoot) expect(answer.body.uid).toBeGreaterThanOrEqual(200_000);
    expectFenced(answer.body);
  });

  it("refuses a local process that finds a replica's socket", async () => {
    const sockets: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.name === "http.sock") sockets.push(full);
      }
    };
    await walk(path.join(hangar.dataDir, "run"));
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) {
      const reply = await new Promise<string>((resolve) => {
        const connection = net.connect(socket);
        let text = "";
        connection.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        connection.on("close", () => resolve(text));
        connection.on("error", () => resolve(text));
        connection.write(
          'POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{"action":"probe"}  ',
        );
      });
      expect(reply.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    }
  });

  it("keeps a server command's port out of reach of local processes and of other replicas", async () => {
    const marker = "the command model answered";
    const server = `import http from "node:http";
      http.createServer((req, res) => res.end(JSON.stringify({ marker: ${JSON.stringify(marker)}, port: process.env.PORT })))
        .listen(Number(process.env.PORT));`;
    const dep = await pushFolder(
      hangar,
      "command-server",
      await modelFolder({
        "server.mjs": server,
        "hangar.json": JSON.stringify({
          server: { command: "node server.mjs", predictPath: "/predict", readinessPath: "/health" },
        }),
      }),
    );
    await waitForStatus(hangar, dep.id, "ACTIVE");
    // Through the gateway it answers, and says which port it listens on.
    const through = await predict(hangar, `/models/${dep.model.id}/deployments/${dep.id}/predict`, {});
    expect(through.body.marker).toBe(marker);
    const port = Number(through.body.port);
    expect(port).toBeGreaterThan(0);

    // A local process on that port reaches something else or nothing, never the model.
    const local = await new Promise<string>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      let text = "";
      socket.once("connect", () => socket.write("GET /predict HTTP/1.0\r\nhost: x\r\n\r\n"));
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      socket.once("close", () => resolve(text));
      socket.once("error", () => resolve(text));
    });
    expect(local).not.toContain(marker);

    // Nor does another replica, on any address it has: its loopback, its own address, the way out.
    const tried = await predict(hangar, path_(), {
      action: "reach",
      port,
      hosts: ["127.0.0.1", "10.0.2.100", "10.0.2.2", "10.0.2.3"],
    });
    expect(tried.status).toBe(200);
    for (const answer of Object.values(tried.body as Record<string, string>))
      expect(answer).not.toContain(marker);
  });

  it.skipIf(outward === undefined)("lets a replica open connections out", async () => {
    await expectReachesOut(hangar, path_());
  });

  it.skipIf(!asRoot)("stops a fork loop at the process cap", async () => {
    const answer = await predict(hangar, path_(), { action: "fork", count: 80 });
    expect(answer.status).toBe(200);
    expect(answer.body.refused).toBeGreaterThan(0);
    expect(answer.body.running).toBeLessThan(48);
    // The replica survived its own fork loop and still serves.
    expect((await predict(hangar, path_(), {})).status).toBe(200);
  });

  it.skipIf(!asRoot)("holds a busy replica to its CPU share", async () => {
    const dep = await hostile("cpu-share", { resources: { cpu: 0.2 } });
    const answer = await predict(hangar, `/models/${dep.model.id}/deployments/${dep.id}/predict`, {
      action: "burn",
      ms: 2000,
    });
    expect(answer.status).toBe(200);
    // 0.2 of a core over 20 CFS periods, with room for the period it started in; unlimited, a busy loop
    // gets a whole core of this machine's two whenever the machine is not saturated.
    expect(answer.body.cpuMs / answer.body.wallMs).toBeLessThan(0.35);
  });

  it.skipIf(!asRoot)("kills a replica over its memory and says so in its logs", async () => {
    const dep = await hostile("memory-hog", { resources: { memoryMb: 128 } });
    const answer = await predict(hangar, `/models/${dep.model.id}/deployments/${dep.id}/predict`, {
      action: "hog",
    });
    expect(answer.status).toBeGreaterThanOrEqual(500);
    await waitFor(async () => (await logsOf(dep.id)).includes("out of memory (limit 128 MB)"), {
      what: "the out-of-memory line",
    });
  });
});

// CI runs as root; this runs Hangar itself as an ordinary user, so that the fence is the one
// bubblewrap puts up in a user namespace, without a uid per replica or cgroup limits.
describe.skipIf(!fenceable || !asRoot)("the replica fence, Hangar run by an unprivileged user", () => {
  const NOBODY = { uid: 65534, gid: 65534 };
  // slirp4netns opens the TUN device as Hangar's user: Debian leaves it open to all, this machine kind
  // to root only; the test gives it Debian's mode for its run.
  const TUN = "/dev/net/tun";
  const tunMode = existsSync(TUN) ? statSync(TUN).mode & 0o777 : null;
  beforeAll(() => {
    if (tunMode !== null) chmodSync(TUN, 0o666);
  });
  afterAll(() => {
    if (tunMode !== null) chmodSync(TUN, tunMode);
  });

  it("still hides the data dir, processes and secrets, keeps the code read-only, lets the replica out, and says limits are off", async () => {
    const own = await startHangar({ user: NOBODY, env: { HOME: "/tmp" } });
    try {
      const { serverInfo } = await gql(own, "{ serverInfo { sandbox limits } }");
      expect(serverInfo).toEqual({ sandbox: "FENCED", limits: false });
      expect(own.output()).toContain("resource limits are not enforced");
      const config = { dataDir: own.dataDir, hangarPort: Number(new URL(own.url).port) };
      const dep = await pushFolder(
        own,
        "hostile-unprivileged",
        await modelFolder({ "model.mjs": HOSTILE, "hangar.json": JSON.stringify({ config }) }),
      );
      await waitForStatus(own, dep.id, "ACTIVE");
      const answer = await predict(own, `/models/${dep.model.id}/deployments/${dep.id}/predict`, {
        action: "probe",
      });
      expect(answer.status).toBe(200);
      // Inside its user namespace it is Hangar's own user, never root.
      expect(answer.body.uid).toBe(NOBODY.uid);
      expectFenced(answer.body);
      if (tunMode !== null && outward !== undefined)
        await expectReachesOut(own, `/models/${dep.model.id}/deployments/${dep.id}/predict`);
    } finally {
      await own.dispose();
    }
  }, 120_000);
});

describe("where the fence cannot be put up", () => {
  // Without bubblewrap on its PATH, this machine cannot fence, whoever runs the test.
  const noFence = { PATH: "/nonexistent" };
  const MODEL = "export default class M { predict() { return { ok: true }; } }";

  it("runs replicas unfenced and says so (auto), or refuses to (required); off is off", async () => {
    const auto = await startHangar({ env: noFence });
    try {
      const { serverInfo } = await gql(auto, "{ serverInfo { sandbox } }");
      expect(serverInfo.sandbox).toBe("UNAVAILABLE");
      expect(auto.output()).toContain("NOT fenced (UNAVAILABLE)");
      expect(auto.output()).toContain("bubblewrap (bwrap) is not installed");
      const dep = await pushFolder(auto, "unfenced", await modelFolder({ "model.mjs": MODEL }));
      await waitForStatus(auto, dep.id, "ACTIVE");
      expect((await predict(auto, `/models/${dep.model.id}/deployments/${dep.id}/predict`, {})).status).toBe(
        200,
      );
    } finally {
      await auto.dispose();
    }

    const required = await startHangar({ env: { ...noFence, HANGAR_SANDBOX: "required" } });
    try {
      const dep = await pushFolder(required, "must-fence", await modelFolder({ "model.mjs": MODEL }));
      await waitForStatus(required, dep.id, "DEPLOY_FAILED");
      const data = await gql(
        required,
        "query($id: ID!) { deployment(id: $id) { logs(last: 100) { line } } }",
        {
          id: dep.id,
        },
      );
      const lines = data.deployment.logs.map((l: { line: string }) => l.line).join("\n");
      expect(lines).toContain("HANGAR_SANDBOX=required and replicas cannot be fenced here");
    } finally {
      await required.dispose();
    }

    const off = await startHangar({ env: { HANGAR_SANDBOX: "off" } });
    try {
      expect((await gql(off, "{ serverInfo { sandbox } }")).serverInfo.sandbox).toBe("OFF");
    } finally {
      await off.dispose();
    }
  }, 180_000);
});
