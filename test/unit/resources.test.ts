// Replica resources (API.md section 9): hangar.json's `resources` over the server's defaults, every
// bound, the settings that set the defaults, what a deployment row stored, and the build that asks.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import {
  DEFAULT_RESOURCES,
  deploymentResources,
  RESOURCE_BOUNDS,
  type Resources,
  resolveResources,
  resourceProblem,
  storedResources,
} from "../../src/domain/resources.ts";
import { buildSpec } from "../../src/runtime/build.ts";

const DEFAULTS: Resources = { cpu: 1, memoryMb: 1024, pids: 256 };
const problem = (value: unknown, defaults = DEFAULTS) => {
  const result = resolveResources(value, defaults);
  return "problem" in result ? result.problem : null;
};
const resolved = (value: unknown, defaults = DEFAULTS) => {
  const result = resolveResources(value, defaults);
  if ("problem" in result) throw new Error(result.problem);
  return result.resources;
};

describe("resolveResources: defaults", () => {
  it("runs with the server's defaults when hangar.json has no resources, or an empty object", () => {
    expect(resolved(undefined)).toEqual(DEFAULTS);
    expect(resolved({})).toEqual(DEFAULTS);
    const other = { cpu: 0.5, memoryMb: 300, pids: 64 };
    expect(resolved(undefined, other)).toEqual(other);
  });

  it("takes what hangar.json sets and fills the rest from the defaults; pids is always the server's", () => {
    expect(resolved({ cpu: 2 })).toEqual({ cpu: 2, memoryMb: 1024, pids: 256 });
    expect(resolved({ memoryMb: 2048 })).toEqual({ cpu: 1, memoryMb: 2048, pids: 256 });
    expect(resolved({ cpu: 0.25, memoryMb: 64 }, { cpu: 4, memoryMb: 4096, pids: 100 })).toEqual({
      cpu: 0.25,
      memoryMb: 64,
      pids: 100,
    });
  });

  it("hands out a copy, never the defaults object itself", () => {
    const defaults = { ...DEFAULTS };
    const resources = resolved(undefined, defaults);
    resources.cpu = 9;
    expect(defaults.cpu).toBe(1);
  });

  it("has the defaults API.md names: 1 core, 1024 MB, 256 processes", () => {
    expect(DEFAULT_RESOURCES).toEqual({ cpu: 1, memoryMb: 1024, pids: 256 });
  });
});

describe("resolveResources: bounds", () => {
  it.each([
    [{ cpu: 0.01 }, { cpu: 0.01 }],
    [{ cpu: 0.5 }, { cpu: 0.5 }],
    [{ cpu: 64 }, { cpu: 64 }],
    [{ memoryMb: 64 }, { memoryMb: 64 }],
    [{ memoryMb: 1_048_576 }, { memoryMb: 1_048_576 }],
    [{ memoryMb: 1e3 }, { memoryMb: 1000 }],
  ])("accepts the edge %j", (value, expected) => {
    expect(resolved(value)).toMatchObject(expected);
  });

  it.each([
    [
      { cpu: 0 },
      "resources.cpu must be at least 0.01 cores (the smallest CPU quota the kernel takes), got 0",
    ],
    [
      { cpu: 0.009 },
      "resources.cpu must be at least 0.01 cores (the smallest CPU quota the kernel takes), got 0.009",
    ],
    [
      { cpu: -1 },
      "resources.cpu must be at least 0.01 cores (the smallest CPU quota the kernel takes), got -1",
    ],
    [{ cpu: 64.5 }, "resources.cpu must be at most 64 cores, got 64.5"],
    [{ cpu: "2" }, 'resources.cpu must be a number of cores (such as 0.5 or 2), got "2"'],
    [{ cpu: null }, "resources.cpu must be a number of cores (such as 0.5 or 2), got null"],
    [{ cpu: true }, "resources.cpu must be a number of cores (such as 0.5 or 2), got true"],
    [{ memoryMb: 63 }, "resources.memoryMb must be at least 64 MB (a replica cannot start in less), got 63"],
    [{ memoryMb: 0 }, "resources.memoryMb must be at least 64 MB (a replica cannot start in less), got 0"],
    [{ memoryMb: 1_048_577 }, "resources.memoryMb must be at most 1048576 MB, got 1048577"],
    [{ memoryMb: 512.5 }, "resources.memoryMb must be a whole number of MB, got 512.5"],
    [{ memoryMb: "1Gi" }, 'resources.memoryMb must be a whole number of MB (such as 512 or 2048), got "1Gi"'],
    [{ memoryMb: [512] }, "resources.memoryMb must be a whole number of MB (such as 512 or 2048), got [512]"],
    [
      { cpu: 2, memoryMb: 10 },
      "resources.memoryMb must be at least 64 MB (a replica cannot start in less), got 10",
    ],
  ])("refuses %j, naming the field", (value, message) => {
    expect(problem(value)).toBe(message);
  });

  it("holds the bounds it says", () => {
    expect(RESOURCE_BOUNDS.cpu).toMatchObject({ min: 0.01, max: 64, integer: false });
    expect(RESOURCE_BOUNDS.memoryMb).toMatchObject({ min: 64, max: 1_048_576, integer: true });
    expect(RESOURCE_BOUNDS.pids).toMatchObject({ min: 32, max: 4_194_304, integer: true });
  });
});

describe("resolveResources: shape and keys", () => {
  it.each([null, 2, "1 cpu", [1, 1024], true])("refuses resources that are not an object: %j", (value) => {
    expect(problem(value)).toBe(
      `resources must be an object such as { "cpu": 1, "memoryMb": 1024 }, got ${JSON.stringify(value)}`,
    );
  });

  it.each(["memory", "cpus", "gpu", "memoryMB", ""])("refuses the unknown key %j", (key) => {
    expect(problem({ cpu: 1, [key]: 1 })).toBe(
      `resources.${key} is not a resource: resources takes cpu and memoryMb`,
    );
  });

  it("refuses pids, which only the server sets", () => {
    expect(problem({ pids: 1000 })).toBe(
      "resources.pids cannot be set in hangar.json: the process cap is the server's (HANGAR_REPLICA_PIDS)",
    );
  });

  it("reports an unknown key before a bad value", () => {
    expect(problem({ cpu: 0, memory: 1 })).toBe(
      "resources.memory is not a resource: resources takes cpu and memoryMb",
    );
  });
});

describe("resourceProblem", () => {
  it("quotes the value as the caller says (an environment variable's raw text)", () => {
    expect(resourceProblem("pids", Number("abc"), "'abc'")).toBe(
      "must be a whole number of processes (such as 256), got 'abc'",
    );
    expect(resourceProblem("pids", 31)).toBe(
      "must be at least 32 processes (a replica's own threads count), got 31",
    );
    expect(resourceProblem("pids", 4_194_305)).toBe("must be at most 4194304 processes, got 4194305");
    expect(resourceProblem("pids", 32)).toBeNull();
    expect(resourceProblem("cpu", Number.POSITIVE_INFINITY, "'Infinity'")).toBe(
      "must be a number of cores (such as 0.5 or 2), got 'Infinity'",
    );
  });
});

describe("storedResources and deploymentResources", () => {
  it("reads a whole, valid set", () => {
    expect(storedResources({ cpu: 0.5, memoryMb: 512, pids: 100 })).toEqual({
      cpu: 0.5,
      memoryMb: 512,
      pids: 100,
    });
  });

  it.each([
    null,
    undefined,
    "x",
    [],
    {},
    { cpu: 1, memoryMb: 1024 },
    { cpu: 0, memoryMb: 1024, pids: 256 },
    { cpu: 1, memoryMb: "1024", pids: 256 },
  ])("answers null for %j (not built yet, an older row, or not whole)", (value) => {
    expect(storedResources(value)).toBeNull();
  });

  it("answers the defaults for a row that stored none", () => {
    expect(deploymentResources(null, DEFAULTS)).toEqual(DEFAULTS);
    expect(deploymentResources({ cpu: 2, memoryMb: 128, pids: 40 }, DEFAULTS)).toEqual({
      cpu: 2,
      memoryMb: 128,
      pids: 40,
    });
  });
});

describe("settings: HANGAR_REPLICA_CPU, HANGAR_REPLICA_MEMORY_MB, HANGAR_REPLICA_PIDS", () => {
  it("defaults to 1 core, 1024 MB and 256 processes", () => {
    expect(loadConfig({}).replicaResources).toEqual({ cpu: 1, memoryMb: 1024, pids: 256 });
    expect(loadConfig({ HANGAR_REPLICA_CPU: "" }).replicaResources.cpu).toBe(1);
  });

  it("reads each", () => {
    expect(
      loadConfig({ HANGAR_REPLICA_CPU: "0.5", HANGAR_REPLICA_MEMORY_MB: "2048", HANGAR_REPLICA_PIDS: "64" })
        .replicaResources,
    ).toEqual({ cpu: 0.5, memoryMb: 2048, pids: 64 });
  });

  it.each([
    [
      "HANGAR_REPLICA_CPU",
      "0",
      "HANGAR_REPLICA_CPU must be at least 0.01 cores (the smallest CPU quota the kernel takes), got '0'",
    ],
    [
      "HANGAR_REPLICA_CPU",
      "two",
      "HANGAR_REPLICA_CPU must be a number of cores (such as 0.5 or 2), got 'two'",
    ],
    ["HANGAR_REPLICA_CPU", "65", "HANGAR_REPLICA_CPU must be at most 64 cores, got '65'"],
    [
      "HANGAR_REPLICA_MEMORY_MB",
      "512.5",
      "HANGAR_REPLICA_MEMORY_MB must be a whole number of MB, got '512.5'",
    ],
    [
      "HANGAR_REPLICA_MEMORY_MB",
      "32",
      "HANGAR_REPLICA_MEMORY_MB must be at least 64 MB (a replica cannot start in less), got '32'",
    ],
    [
      "HANGAR_REPLICA_MEMORY_MB",
      "1G",
      "HANGAR_REPLICA_MEMORY_MB must be a whole number of MB (such as 512 or 2048), got '1G'",
    ],
    [
      "HANGAR_REPLICA_PIDS",
      "8",
      "HANGAR_REPLICA_PIDS must be at least 32 processes (a replica's own threads count), got '8'",
    ],
  ])("refuses %s=%s at start, saying why", (name, raw, message) => {
    expect(() => loadConfig({ [name]: raw })).toThrow(message);
  });
});

describe("the build", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "hangar-resources-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function build(manifest: unknown, defaults = DEFAULTS) {
    await writeFile(path.join(dir, "model.mjs"), "export default class M { predict(x) { return x } }");
    await rm(path.join(dir, "hangar.json"), { force: true });
    if (manifest !== undefined) await writeFile(path.join(dir, "hangar.json"), JSON.stringify(manifest));
    return buildSpec({
      deploymentId: "dep_test",
      artifactHash: "hash",
      dir,
      environmentName: null,
      resourceDefaults: defaults,
    });
  }

  it("puts the resolved resources in the spec, for the JavaScript model server and an own command", async () => {
    const plain = await build(undefined, { cpu: 2, memoryMb: 512, pids: 100 });
    expect("spec" in plain && plain.spec.resources).toEqual({ cpu: 2, memoryMb: 512, pids: 100 });
    const set = await build({ resources: { cpu: 0.5, memoryMb: 256 } });
    expect("spec" in set && set.spec.resources).toEqual({ cpu: 0.5, memoryMb: 256, pids: 256 });
    const command = await build({ server: { command: "python3 serve.py" }, resources: { memoryMb: 128 } });
    expect("spec" in command && command.spec).toMatchObject({
      command: "python3 serve.py",
      resources: { cpu: 1, memoryMb: 128, pids: 256 },
    });
  });

  it("fails on a bad value the way other hangar.json errors do, naming the field", async () => {
    expect(await build({ resources: { memoryMb: 16 } })).toEqual({
      error:
        "hangar.json: resources.memoryMb must be at least 64 MB (a replica cannot start in less), got 16",
      log: ["read hangar.json"],
    });
    expect(await build({ server: { command: "x" }, resources: { gpu: 1 } })).toMatchObject({
      error: "hangar.json: resources.gpu is not a resource: resources takes cpu and memoryMb",
    });
  });
});
