import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as tar from "tar";
import { afterEach, describe, expect, it } from "vitest";
import { CliError } from "../../src/cli/errors.ts";
import { formatBytes, linkTargetInside, packFolder } from "../../src/cli/pack.ts";

const folders: string[] = [];

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hangar-pack-"));
  folders.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** The archive's entry names (as the server will see them) and file contents. */
async function unpack(archive: Uint8Array): Promise<{ names: string[]; files: Record<string, string> }> {
  const names: string[] = [];
  const files: Record<string, string> = {};
  const parser = new tar.Parser({
    onReadEntry: (entry) => {
      names.push(entry.path);
      const chunks: Buffer[] = [];
      entry.on("data", (chunk: Buffer) => chunks.push(chunk));
      entry.on("end", () => {
        if (entry.type === "File") files[entry.path] = Buffer.concat(chunks).toString();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on("end", resolve);
    parser.on("error", reject);
    parser.end(Buffer.from(archive));
  });
  return { names, files };
}

afterEach(async () => {
  await Promise.all(folders.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("packFolder", () => {
  it("packs the folder's contents with relative paths, directories included", async () => {
    const dir = await folder({
      "model.mjs": "export default class {}",
      "lib/util.mjs": "export const x = 1;",
    });
    await mkdir(path.join(dir, "empty"));
    const packed = await packFolder(dir);
    const { names, files } = await unpack(packed.archive);
    expect(names.sort()).toEqual(["empty/", "lib/", "lib/util.mjs", "model.mjs"]);
    expect(files["model.mjs"]).toBe("export default class {}");
    expect(packed.files).toBe(2);
    expect(packed.bytes).toBe("export default class {}".length + "export const x = 1;".length);
    for (const name of names) {
      expect(path.posix.isAbsolute(name)).toBe(false);
      expect(name.split("/")).not.toContain("..");
    }
  });

  it("leaves out version-control metadata and caches by default, but keeps node_modules", async () => {
    const dir = await folder({
      "model.mjs": "m",
      ".git/HEAD": "ref",
      ".hangar/db/x": "x",
      "__pycache__/a.cpython.pyc": "c",
      "src/b.pyc": "c",
      ".DS_Store": "x",
      "node_modules/dep/index.js": "module.exports = 1",
    });
    const { names } = await unpack((await packFolder(dir)).archive);
    expect(names.sort()).toEqual([
      "model.mjs",
      "node_modules/",
      "node_modules/dep/",
      "node_modules/dep/index.js",
      "src/",
    ]);
  });

  it("honours .hangarignore in gitignore syntax, negations included", async () => {
    const dir = await folder({
      ".hangarignore": "# comment\nsecret.txt\ndata/\n*.log\n!keep.log\n/top-only.txt\n!.git/\n",
      "model.mjs": "m",
      "secret.txt": "s",
      "sub/secret.txt": "s",
      "data/big.bin": "b",
      "a.log": "l",
      "keep.log": "k",
      "top-only.txt": "t",
      "sub/top-only.txt": "t",
      ".git/HEAD": "ref",
    });
    const { names } = await unpack((await packFolder(dir)).archive);
    expect(names.sort()).toEqual([
      ".git/",
      ".git/HEAD",
      ".hangarignore",
      "keep.log",
      "model.mjs",
      "sub/",
      "sub/top-only.txt",
    ]);
  });

  it("is deterministic: the same folder packs to the same bytes", async () => {
    const dir = await folder({ "model.mjs": "m", "b/c.txt": "c" });
    const first = await packFolder(dir);
    await writeFile(path.join(dir, "model.mjs"), "m"); // same content, new mtime
    const second = await packFolder(dir);
    expect(Buffer.from(second.archive).equals(Buffer.from(first.archive))).toBe(true);
  });

  it("keeps links that stay inside the folder and refuses ones that leave it", async () => {
    const dir = await folder({ "model.mjs": "m", "lib/a.mjs": "a" });
    await symlink("lib/a.mjs", path.join(dir, "alias.mjs"));
    const { names } = await unpack((await packFolder(dir)).archive);
    expect(names).toContain("alias.mjs");

    await symlink("../../etc/passwd", path.join(dir, "lib", "escape"));
    const refused = await packFolder(dir).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(CliError);
    expect((refused as CliError).message).toContain("lib/escape");
    expect((refused as CliError).message).toContain("outside the folder");

    await writeFile(path.join(dir, ".hangarignore"), "lib/escape\n");
    const { names: after } = await unpack((await packFolder(dir)).archive);
    expect(after).not.toContain("lib/escape");
  });

  it("refuses absolute links", async () => {
    const dir = await folder({ "model.mjs": "m" });
    await symlink(path.join(dir, "model.mjs"), path.join(dir, "abs.mjs"));
    await expect(packFolder(dir)).rejects.toThrow(/abs\.mjs is a link to .*outside the folder/);
  });

  it("packs an empty folder into a valid archive", async () => {
    const packed = await packFolder(await folder({}));
    expect(packed.files).toBe(0);
    await expect(unpack(packed.archive)).resolves.toBeDefined();
  });
});

describe("pack helpers", () => {
  it("linkTargetInside resolves relative to the link's directory", () => {
    expect(linkTargetInside("a/b", "c")).toBe("a/c");
    expect(linkTargetInside("a/b", "../c")).toBe("c");
    expect(linkTargetInside("a/b", "../../c")).toBeNull();
    expect(linkTargetInside("b", "/etc/passwd")).toBeNull();
    expect(linkTargetInside("b", "..")).toBeNull();
  });

  it("formatBytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(4200)).toBe("4.2 kB");
    expect(formatBytes(13_000_000)).toBe("13.0 MB");
  });
});
