// planPatch: what a patch of the development deployment needs, decided from two real folders.
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonEqual, planPatch as judge, OWN_COMMAND_REASON } from "../../src/domain/patch.ts";
import { compareFolders } from "../../src/store/folder-diff.ts";

/** The comparison (store/) and the judgement (domain/) together, as the patch use case runs them. */
const planPatch = async (oldDir: string, newDir: string) => judge(await compareFolders(oldDir, newDir));

/** A folder's files: text content, or `{ link }` for a symbolic link, or `{ dir: true }` for an empty folder. */
type Tree = Record<string, string | { link: string } | { dir: true }>;

let root = "";
let folders = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "hangar-patch-"));
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

async function folder(tree: Tree): Promise<string> {
  const dir = path.join(root, String(folders++));
  await mkdir(dir);
  for (const [rel, content] of Object.entries(tree)) {
    const file = path.join(dir, rel);
    if (typeof content === "object" && "dir" in content) {
      await mkdir(file, { recursive: true });
      continue;
    }
    await mkdir(path.dirname(file), { recursive: true });
    if (typeof content === "string") await writeFile(file, content);
    else await symlink(content.link, file);
  }
  return dir;
}

async function plan(before: Tree, after: Tree) {
  return planPatch(await folder(before), await folder(after));
}

const model = "export default class Model { predict(x) { return x; } }\n";
const base: Tree = {
  "model.mjs": model,
  "lib/util.mjs": "export const k = 1;\n",
  "weights.json": "[1,2,3]",
  "hangar.json": JSON.stringify({ name: "iris", env: { MODE: "fast" }, config: { t: 0.5 } }),
};

describe("planPatch: identical", () => {
  it("finds two folders with the same tree and contents identical", async () => {
    expect(await plan(base, { ...base })).toEqual({ kind: "identical", reasons: [] });
  });

  it("is identical for the same folder and for two empty folders", async () => {
    const dir = await folder(base);
    expect(await planPatch(dir, dir)).toEqual({ kind: "identical", reasons: [] });
    expect(await plan({}, {})).toEqual({ kind: "identical", reasons: [] });
  });

  it("compares symbolic links by target without following them", async () => {
    const withLink = { ...base, "current.json": { link: "weights.json" } };
    expect((await plan(withLink, { ...withLink })).kind).toBe("identical");
    // A dangling link is compared by target too.
    const dangling = { ...base, "gone.json": { link: "nowhere.json" } };
    expect((await plan(dangling, { ...dangling })).kind).toBe("identical");
  });

  it("rejects a folder that does not exist", async () => {
    const dir = await folder(base);
    await expect(planPatch(dir, path.join(root, "missing"))).rejects.toThrow();
  });
});

describe("planPatch: code", () => {
  it("is a code change when a model file changes, with the path as the reason", async () => {
    expect(await plan(base, { ...base, "model.mjs": model.replace("x;", "x * 2;") })).toEqual({
      kind: "code",
      reasons: ["model.mjs changed"],
    });
  });

  it("sees a change that keeps the size (found by hash, not by size)", async () => {
    expect(await plan(base, { ...base, "weights.json": "[1,2,4]" })).toEqual({
      kind: "code",
      reasons: ["weights.json changed"],
    });
  });

  it("reports added and removed files, and an added folder by its files", async () => {
    const { "lib/util.mjs": _removed, ...rest } = base;
    expect(await plan(base, { ...rest, "extra/a.mjs": "1", "extra/deep/b.mjs": "2" })).toEqual({
      kind: "code",
      reasons: ["extra/a.mjs added", "extra/deep/b.mjs added", "lib/util.mjs removed"],
    });
  });

  it("counts an empty folder, a file turned into a link and a retargeted link as changes", async () => {
    expect(await plan(base, { ...base, "cache/": { dir: true } })).toEqual({
      kind: "code",
      reasons: ["cache added"],
    });
    expect(await plan(base, { ...base, "weights.json": { link: "lib/util.mjs" } })).toEqual({
      kind: "code",
      reasons: ["weights.json changed"],
    });
    const linked = { ...base, "current.json": { link: "weights.json" } };
    expect(await plan(linked, { ...linked, "current.json": { link: "lib/util.mjs" } })).toEqual({
      kind: "code",
      reasons: ["current.json changed"],
    });
  });

  it("treats hangar.json keys other than server and env as code", async () => {
    const changed = JSON.stringify({ name: "iris2", env: { MODE: "fast" }, config: { t: 0.7 }, extra: 1 });
    expect(await plan(base, { ...base, "hangar.json": changed })).toEqual({
      kind: "code",
      reasons: ["hangar.json: config changed", "hangar.json: extra added", "hangar.json: name changed"],
    });
  });

  it("compares hangar.json by value: reformatting or reordering keys is code, not full", async () => {
    const reordered = `{\n  "config": {"t": 0.5},\n  "env": {"MODE": "fast"},\n  "name": "iris"\n}\n`;
    expect(await plan(base, { ...base, "hangar.json": reordered })).toEqual({
      kind: "code",
      reasons: ["hangar.json changed (same settings)"],
    });
  });

  it("is code when hangar.json appears or goes away without server or env", async () => {
    const { "hangar.json": _manifest, ...bare } = base;
    expect(await plan(bare, { ...bare, "hangar.json": '{"name":"iris"}' })).toEqual({
      kind: "code",
      reasons: ["hangar.json: name added"],
    });
    expect(await plan({ ...bare, "hangar.json": "{}" }, bare)).toEqual({
      kind: "code",
      reasons: ["hangar.json removed (same settings)"],
    });
  });

  it("treats a hangar.json below the top as an ordinary file", async () => {
    expect((await plan(base, { ...base, "sub/hangar.json": '{"server":{"command":"x"}}' })).kind).toBe(
      "code",
    );
  });

  it("lists at most 20 changes, then a count", async () => {
    const many: Tree = {};
    for (let i = 0; i < 25; i++) many[`f${String(i).padStart(2, "0")}.mjs`] = String(i);
    const result = await plan(base, { ...base, ...many });
    expect(result.kind).toBe("code");
    expect(result.reasons).toHaveLength(21);
    expect(result.reasons[0]).toBe("f00.mjs added");
    expect(result.reasons[20]).toBe("and 5 more changes");
  });
});

describe("planPatch: full", () => {
  it("needs a full deploy when hangar.json's env or server changes", async () => {
    const env = JSON.stringify({ name: "iris", env: { MODE: "slow" }, config: { t: 0.5 } });
    expect(await plan(base, { ...base, "hangar.json": env })).toEqual({
      kind: "full",
      reasons: ["hangar.json: env changed"],
    });
    const server = JSON.stringify({ name: "iris", env: { MODE: "fast" }, config: { t: 0.5 }, server: {} });
    expect(await plan(base, { ...base, "hangar.json": server, "model.mjs": "changed" })).toEqual({
      kind: "full",
      reasons: ["hangar.json: server added"],
    });
    const { "hangar.json": _manifest, ...bare } = base;
    expect(await plan(base, bare)).toEqual({ kind: "full", reasons: ["hangar.json: env removed"] });
  });

  it("needs a full deploy when hangar.json's resources change (a replica's limits are set at its start)", async () => {
    const withResources = (resources: unknown) =>
      JSON.stringify({ name: "iris", env: { MODE: "fast" }, config: { t: 0.5 }, resources });
    expect(await plan(base, { ...base, "hangar.json": withResources({ cpu: 2 }) })).toEqual({
      kind: "full",
      reasons: ["hangar.json: resources added"],
    });
    const before = { ...base, "hangar.json": withResources({ cpu: 2 }) };
    expect(await plan(before, { ...base, "hangar.json": withResources({ cpu: 2, memoryMb: 512 }) })).toEqual({
      kind: "full",
      reasons: ["hangar.json: resources changed"],
    });
    // The same resources, written otherwise, are no change of them.
    const spaced = `{"name":"iris","env":{"MODE":"fast"},"config":{"t":0.5},"resources":{ "cpu": 2 },"extra":1}`;
    expect(await plan(before, { ...base, "hangar.json": spaced })).toEqual({
      kind: "code",
      reasons: ["hangar.json: extra added"],
    });
  });

  it("needs a full deploy when hangar.json stops or starts being valid JSON", async () => {
    expect(await plan(base, { ...base, "hangar.json": "{ nope" })).toEqual({
      kind: "full",
      reasons: ["hangar.json is now not valid JSON"],
    });
    expect(await plan({ ...base, "hangar.json": "{ nope" }, base)).toEqual({
      kind: "full",
      reasons: ["hangar.json was not valid JSON, now a valid JSON object"],
    });
    expect(await plan({ ...base, "hangar.json": "{ nope" }, { ...base, "hangar.json": "{ nope!" })).toEqual({
      kind: "full",
      reasons: ["hangar.json is still not valid JSON"],
    });
    expect(await plan(base, { ...base, "hangar.json": "[]" })).toEqual({
      kind: "full",
      reasons: ["hangar.json is now not a JSON object"],
    });
  });

  it("needs a full deploy for a changed dependency manifest or lockfile anywhere in the tree", async () => {
    const manifests = [
      "package.json",
      "package-lock.json",
      "npm-shrinkwrap.json",
      "yarn.lock",
      "pnpm-lock.yaml",
      "requirements.txt",
      "pyproject.toml",
      "Pipfile",
      "Pipfile.lock",
      "poetry.lock",
    ];
    for (const name of manifests) {
      expect(await plan(base, { ...base, [name]: "x" })).toEqual({
        kind: "full",
        reasons: [`${name} added (dependencies)`],
      });
    }
    const withPackage = { ...base, "package.json": '{"type":"module"}', "py/requirements.txt": "numpy\n" };
    expect(
      await plan(withPackage, {
        ...withPackage,
        "package.json": '{"type":"module","dependencies":{"a":"1"}}',
        "py/requirements.txt": "numpy==2\n",
        "model.mjs": "changed",
      }),
    ).toEqual({
      kind: "full",
      reasons: ["package.json changed (dependencies)", "py/requirements.txt changed (dependencies)"],
    });
    const { "package.json": _package, ...withoutPackage } = withPackage;
    expect(await plan(withPackage, withoutPackage)).toEqual({
      kind: "full",
      reasons: ["package.json removed (dependencies)"],
    });
  });

  it("needs a full deploy for anything under node_modules/, summed up per node_modules folder", async () => {
    const deps = { ...base, "node_modules/a/index.js": "1", "node_modules/a/package.json": "{}" };
    expect(await plan(deps, { ...deps, "node_modules/a/index.js": "2" })).toEqual({
      kind: "full",
      reasons: ["node_modules/ changed (1 entry)"],
    });
    expect(
      await plan(base, { ...base, "node_modules/b/index.js": "1", "sub/node_modules/c.js": "1" }),
    ).toEqual({
      kind: "full",
      reasons: ["node_modules/ changed (3 entries)", "sub/node_modules/ changed (2 entries)"],
    });
  });

  it("restarts models served by their own command for any change", async () => {
    const own = {
      "server.py": "print('v1')",
      "hangar.json": JSON.stringify({ server: { command: "python3 server.py" } }),
    };
    expect(await plan(own, { ...own, "server.py": "print('v2')" })).toEqual({
      kind: "full",
      reasons: [OWN_COMMAND_REASON],
    });
    expect(await plan(own, { ...own })).toEqual({ kind: "identical", reasons: [] });
    // A JavaScript model that becomes a command-served one, and back.
    const commandManifest = JSON.stringify({
      ...JSON.parse(base["hangar.json"] as string),
      server: { command: "python3 server.py" },
    });
    expect((await plan(base, { ...base, "hangar.json": commandManifest })).reasons).toEqual([
      OWN_COMMAND_REASON,
      "hangar.json: server added",
    ]);
    expect((await plan({ ...base, "hangar.json": commandManifest }, base)).reasons).toContain(
      OWN_COMMAND_REASON,
    );
  });
});

describe("planPatch: speed", () => {
  it("compares folders of a few thousand files quickly", async () => {
    const tree: Tree = { ...base };
    for (let i = 0; i < 3000; i++) tree[`data/${i % 30}/file-${i}.txt`] = `content ${i}\n`.repeat(20);
    const [before, after] = await Promise.all([
      folder(tree),
      folder({ ...tree, "data/7/file-7.txt": "changed" }),
    ]);
    const started = performance.now();
    expect(await planPatch(before, after)).toEqual({ kind: "code", reasons: ["data/7/file-7.txt changed"] });
    expect(await planPatch(before, before)).toEqual({ kind: "identical", reasons: [] });
    // About half a second on a small machine; the bound only catches a pathological slowdown.
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe("jsonEqual", () => {
  it.each([
    [{ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }, true],
    [{ a: 1 }, { a: 1, b: undefined }, false],
    [[1, 2], [2, 1], false],
    [null, {}, false],
    [{}, [], false],
    ["1", 1, false],
    [undefined, undefined, true],
  ])("%j vs %j: %s", (a, b, equal) => {
    expect(jsonEqual(a, b)).toBe(equal);
  });
});
