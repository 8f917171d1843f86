import { createHash, randomBytes } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import * as tar from "tar";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ArtifactStore,
  InvalidArchiveError,
  modelRoot,
  type UploadSource,
} from "../../src/store/artifacts.ts";

let work: string;
let root: string;

beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), "hangar-artifacts-"));
  root = path.join(work, "store");
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function store(opts: { maxUploadBytes?: number; maxExtractedBytes?: number; maxEntries?: number } = {}) {
  return new ArtifactStore({ root, maxUploadBytes: 10 * 1024 * 1024, ...opts });
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

async function* chunks(data: Uint8Array, size = 16 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function rootListing(): Promise<string[]> {
  return (await readdir(root).catch(() => [])).sort();
}

/** Writes `files` (path -> contents) into a fresh folder and returns the folder. */
async function folder(files: Record<string, string | Buffer>): Promise<string> {
  const dir = await mkdtemp(path.join(work, "src-"));
  for (const [name, contents] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), contents);
  }
  return dir;
}

/** A gzip'd tar made by the tar package, as a user's `tar czf` would. */
async function pack(cwd: string, entries: string[] = ["."]): Promise<Buffer> {
  const file = path.join(work, `${randomBytes(4).toString("hex")}.tgz`);
  await tar.c({ gzip: true, file, cwd }, entries);
  return readFile(file);
}

interface RawEntry {
  path: string;
  type?: tar.HeaderData["type"];
  body?: string | Buffer;
  /** Declared size, when it should differ from the body (truncation). */
  size?: number;
  linkpath?: string;
  mode?: number;
}

/** A tar written header by header: tar's create API refuses to produce most hostile entries. */
function rawTar(entries: RawEntry[], { end = true } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? "");
    const type = entry.type ?? "File";
    const header = new tar.Header({
      path: entry.path,
      type,
      size: entry.size ?? body.length,
      mode: entry.mode ?? (type === "Directory" ? 0o755 : 0o644),
      linkpath: entry.linkpath,
      uid: 1234,
      gid: 1234,
      mtime: new Date("2024-01-02T03:04:05Z"),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    parts.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const tgz = (entries: RawEntry[]) => gzipSync(rawTar(entries));
const MODEL: RawEntry = { path: "model.mjs", body: "export default class Model {}\n" };

async function expectRefused(
  target: ArtifactStore,
  upload: Uint8Array | UploadSource,
  message: string | RegExp,
): Promise<void> {
  const before = await rootListing();
  const error = await target.put(upload instanceof Uint8Array ? chunks(upload) : upload).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidArchiveError);
  if (typeof message === "string") expect((error as Error).message).toBe(message);
  else expect((error as Error).message).toMatch(message);
  // Nothing new: no temporary file, no partial folder, no stored archive.
  expect(await rootListing()).toEqual(before);
}

describe("ArtifactStore.put with a good archive", () => {
  it("stores the archive by hash and extracts the folder", async () => {
    const weights = randomBytes(200 * 1024);
    const src = await folder({
      "model.mjs": "export default class Model {}\n",
      "lib/util.js": "export const x = 1;\n",
      "data/weights.bin": weights,
      "run.sh": "#!/bin/sh\n",
    });
    await chmod(path.join(src, "run.sh"), 0o755);
    await symlink("data/weights.bin", path.join(src, "current"));
    const bytes = await pack(src);

    const result = await store().put(chunks(bytes));

    const hash = sha256(bytes);
    expect(result).toEqual({ hash, dir: path.join(root, hash), size: bytes.length, deduplicated: false });
    expect(await rootListing()).toEqual([hash, `${hash}.tar.gz`]);
    expect(await readFile(store().archivePath(hash))).toEqual(bytes);
    expect(await store().has(hash)).toBe(true);
    expect(await readFile(path.join(result.dir, "model.mjs"), "utf8")).toBe(
      "export default class Model {}\n",
    );
    expect(await readFile(path.join(result.dir, "lib/util.js"), "utf8")).toBe("export const x = 1;\n");
    expect(await readFile(path.join(result.dir, "data/weights.bin"))).toEqual(weights);
    expect((await stat(path.join(result.dir, "run.sh"))).mode & 0o7777).toBe(0o755);
    expect(await readlink(path.join(result.dir, "current"))).toBe("data/weights.bin");
    expect(await readFile(path.join(result.dir, "current"))).toEqual(weights);
    expect(await modelRoot(result.dir)).toBe(result.dir);
  });

  it("keeps modes without setuid/setgid but readable by all, keeps its own ownership, and leaves directories removable", async () => {
    const bytes = tgz([
      { path: "tools/", type: "Directory", mode: 0o2775 },
      { path: "tools/suid", body: "x", mode: 0o6755 },
      { path: "locked/", type: "Directory", mode: 0o555 },
      { path: "locked/model.mjs", body: "y", mode: 0o440 },
    ]);
    const { dir } = await store().put(chunks(bytes));
    const mode = async (p: string) => (await stat(path.join(dir, p))).mode & 0o7777;
    expect(await mode("tools")).toBe(0o775);
    expect(await mode("tools/suid")).toBe(0o755);
    expect(await mode("locked")).toBe(0o755);
    // A fenced replica runs as a uid of its own: it must be able to read its code.
    expect(await mode("locked/model.mjs")).toBe(0o444);
    expect((await stat(path.join(dir, "tools/suid"))).uid).toBe(process.getuid?.());
    expect((await stat(path.join(dir, "tools/suid"))).mtime.toISOString()).toBe("2024-01-02T03:04:05.000Z");
  });

  it("reads long and non-ASCII names (pax headers)", async () => {
    const long = `${"deep/".repeat(30)}modèle-权重.bin`;
    const src = await folder({ "model.mjs": "m", [long]: "w" });
    const { dir } = await store().put(chunks(await pack(src)));
    expect(await readFile(path.join(dir, long), "utf8")).toBe("w");
  });

  it("allows relative symbolic links that stay inside the folder", async () => {
    const bytes = tgz([
      MODEL,
      { path: "sub/deeper/", type: "Directory" },
      { path: "sub/deeper/up", type: "SymbolicLink", linkpath: "../../model.mjs" },
      { path: "sub/dangling", type: "SymbolicLink", linkpath: "../not-there/x" },
      { path: "self", type: "SymbolicLink", linkpath: "." },
    ]);
    const { dir } = await store().put(chunks(bytes));
    expect(await readFile(path.join(dir, "sub/deeper/up"), "utf8")).toBe(MODEL.body);
    expect((await lstat(path.join(dir, "sub/dangling"))).isSymbolicLink()).toBe(true);
  });

  it("reads async iterables, Node streams and web streams alike", async () => {
    const bytes = tgz([MODEL]);
    const hash = sha256(bytes);
    expect((await store().put(chunks(bytes, 7))).hash).toBe(hash);
    expect((await store().put(Readable.from([bytes]))).hash).toBe(hash);
    expect(
      (await store().put(Readable.toWeb(Readable.from([bytes])) as ReadableStream<Uint8Array>)).hash,
    ).toBe(hash);
  });

  it("accepts an upload of exactly the limit", async () => {
    const bytes = tgz([MODEL]);
    await expect(store({ maxUploadBytes: bytes.length }).put(chunks(bytes))).resolves.toMatchObject({
      size: bytes.length,
    });
  });
});

describe("ArtifactStore.put deduplication", () => {
  it("stores the same bytes once; the second time rewrites nothing, and only marks it used", async () => {
    const bytes = tgz([MODEL]);
    const first = await store().put(chunks(bytes));
    const archiveBefore = await stat(store().archivePath(first.hash));
    const fileBefore = await stat(path.join(first.dir, "model.mjs"));

    const second = await store().put(chunks(bytes));

    expect(second).toEqual({ ...first, deduplicated: true });
    expect(await rootListing()).toEqual([first.hash, `${first.hash}.tar.gz`]);
    const archiveAfter = await stat(store().archivePath(first.hash));
    const fileAfter = await stat(path.join(first.dir, "model.mjs"));
    expect(archiveAfter.ino).toBe(archiveBefore.ino);
    // The archive's modification time is when it was last used: retention counts from it.
    expect(archiveAfter.mtimeMs).toBeGreaterThanOrEqual(archiveBefore.mtimeMs);
    expect((await store().stored()).map((a) => a.hash)).toEqual([first.hash]);
    expect([fileAfter.ino, fileAfter.mtimeMs]).toEqual([fileBefore.ino, fileBefore.mtimeMs]);
  });

  it("lets concurrent puts of the same bytes all succeed with one folder", async () => {
    const bytes = tgz([MODEL, { path: "weights.bin", body: randomBytes(256 * 1024) }]);
    const results = await Promise.all(Array.from({ length: 5 }, () => store().put(chunks(bytes))));
    const hash = sha256(bytes);
    expect(new Set(results.map((r) => r.hash))).toEqual(new Set([hash]));
    expect(results.filter((r) => !r.deduplicated)).toHaveLength(1);
    expect(await rootListing()).toEqual([hash, `${hash}.tar.gz`]);
    expect(await readdir(path.join(root, hash))).toEqual(
      expect.arrayContaining(["model.mjs", "weights.bin"]),
    );
  });

  it("keeps different uploads apart", async () => {
    const a = await store().put(chunks(tgz([MODEL])));
    const b = await store().put(chunks(tgz([{ ...MODEL, body: "other" }])));
    expect(a.hash).not.toBe(b.hash);
    expect(await rootListing()).toEqual([a.hash, `${a.hash}.tar.gz`, b.hash, `${b.hash}.tar.gz`].sort());
  });
});

describe("ArtifactStore.put refuses", () => {
  it("uploads above the limit, and stops reading at once", async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      const chunk = gzipSync(Buffer.alloc(0)).subarray(0, 2);
      for (;;) {
        pulled++;
        yield pulled === 1 ? Buffer.concat([chunk, Buffer.alloc(1022)]) : Buffer.alloc(1024);
      }
    }
    await expectRefused(store({ maxUploadBytes: 10 * 1024 }), endless(), "upload exceeds the 10 KB limit");
    expect(pulled).toBe(11);

    const bytes = tgz([MODEL]);
    await expectRefused(
      store({ maxUploadBytes: bytes.length - 1 }),
      bytes,
      /^upload exceeds the \d+ bytes limit$/,
    );
  });

  it("words the default limit as API.md does", async () => {
    const big = Readable.from(
      (function* () {
        yield Buffer.from([0x1f, 0x8b]);
        for (;;) yield Buffer.alloc(1024 * 1024);
      })(),
    );
    await expectRefused(store({ maxUploadBytes: 100 * 1024 * 1024 }), big, "upload exceeds the 100 MB limit");
    expect(big.destroyed).toBe(true);
  });

  it("data that is not gzip, at its first bytes", async () => {
    let pulled = 0;
    async function* plainTar(): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled++;
        yield rawTar([MODEL]);
      }
    }
    await expectRefused(store(), plainTar(), "not a gzip'd tar archive: the data is not gzip-compressed");
    expect(pulled).toBe(1);
    await expectRefused(
      store(),
      Buffer.from([0x1f]),
      "not a gzip'd tar archive: the data is not gzip-compressed",
    );
    await expectRefused(store(), Buffer.alloc(0), "not a gzip'd tar archive: the upload is empty");
  });

  it("gzip data that is not a tar archive", async () => {
    const message = "not a gzip'd tar archive: the gzip data does not hold a tar archive";
    await expectRefused(store(), gzipSync("hello world\n"), message);
    await expectRefused(store(), gzipSync(randomBytes(4096)), message);
    await expectRefused(
      store(),
      gzipSync(gzipSync(rawTar([MODEL]))),
      "not a gzip'd tar archive: the gzip data holds another gzip file, not a tar archive",
    );
  });

  it("truncated or corrupt archives", async () => {
    const good = tgz([MODEL, { path: "weights.bin", body: randomBytes(64 * 1024) }]);
    await expectRefused(
      store(),
      good.subarray(0, Math.floor(good.length / 2)),
      "not a gzip'd tar archive: the gzip data is truncated",
    );
    const badChecksum = Buffer.from(good);
    badChecksum[good.length - 8] = (badChecksum[good.length - 8] ?? 0) ^ 1;
    await expectRefused(
      store(),
      badChecksum,
      "not a gzip'd tar archive: the gzip data is corrupt (incorrect data check)",
    );
    const shortBody = rawTar([MODEL, { path: "weights.bin", body: "only part", size: 4096 }], { end: false });
    await expectRefused(store(), gzipSync(shortBody), "not a gzip'd tar archive: the tar data is truncated");
    // A header whose name changed after its checksum was computed.
    const damaged = rawTar([MODEL, { path: "weights.bin", body: "w" }]);
    damaged[1024] = "W".charCodeAt(0);
    await expectRefused(
      store(),
      gzipSync(damaged),
      "not a gzip'd tar archive: a tar header is corrupt (checksum failure)",
    );
  });

  it("empty archives", async () => {
    await expectRefused(store(), tgz([]), "archive holds no files");
    await expectRefused(store(), tgz([{ path: "a/", type: "Directory" }]), "archive holds no files");
    await expectRefused(
      store(),
      tgz([{ path: "l", type: "SymbolicLink", linkpath: "x" }]),
      "archive holds no files",
    );
  });

  it("absolute paths and paths with '..'", async () => {
    await expectRefused(
      store(),
      tgz([MODEL, { path: "/etc/evil", body: "x" }]),
      "archive entry '/etc/evil' has an absolute path",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "../escape", body: "x" }]),
      "archive entry '../escape' escapes the model folder",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "a/../../escape", body: "x" }]),
      "archive entry 'a/../../escape' escapes the model folder",
    );
    // Even '..' that would stay inside: the rule is about the component.
    await expectRefused(
      store(),
      tgz([MODEL, { path: "a/../b", body: "x" }]),
      "archive entry 'a/../b' escapes the model folder",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "a\\..\\..\\x", body: "x" }]),
      "archive entry 'a\\..\\..\\x' escapes the model folder",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "../d/", type: "Directory" }]),
      "archive entry '../d/' escapes the model folder",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "../evil\nname", body: "x" }]),
      "archive entry '../evil\\x0aname' escapes the model folder",
    );
  });

  it("symbolic links that lead outside the folder", async () => {
    await expectRefused(
      store(),
      tgz([MODEL, { path: "evil", type: "SymbolicLink", linkpath: "/etc/passwd" }]),
      "archive entry 'evil' links outside the model folder (to '/etc/passwd')",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "sub/evil", type: "SymbolicLink", linkpath: "../../x" }]),
      "archive entry 'sub/evil' links outside the model folder (to '../../x')",
    );
    // Each link alone looks inside; followed on disk, 'b' is the folder's parent.
    await expectRefused(
      store(),
      tgz([
        MODEL,
        { path: "a", type: "SymbolicLink", linkpath: "." },
        { path: "b", type: "SymbolicLink", linkpath: "a/.." },
      ]),
      "archive entry 'b' links outside the model folder (to 'a/..')",
    );
    // Through a name that does not exist (yet): judged as if it were created.
    await expectRefused(
      store(),
      tgz([
        MODEL,
        { path: "a", type: "SymbolicLink", linkpath: "." },
        { path: "b", type: "SymbolicLink", linkpath: "missing/../a/.." },
      ]),
      "archive entry 'b' links outside the model folder (to 'missing/../a/..')",
    );
    // The same through a link that comes later in the archive.
    await expectRefused(
      store(),
      tgz([
        MODEL,
        { path: "sub/b", type: "SymbolicLink", linkpath: "../a/../.." },
        { path: "a", type: "SymbolicLink", linkpath: "sub" },
      ]),
      "archive entry 'sub/b' links outside the model folder (to '../a/../..')",
    );
  });

  it("entries written through a symbolic link or a file", async () => {
    await expectRefused(
      store(),
      tgz([
        MODEL,
        { path: "sub/", type: "Directory" },
        { path: "l", type: "SymbolicLink", linkpath: "sub" },
        { path: "l/x", body: "x" },
      ]),
      "archive entry 'l/x' is inside the symbolic link 'l'",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "model.mjs/x", body: "x" }]),
      "archive entry 'model.mjs/x' is inside 'model.mjs', which is a file",
    );
  });

  it("entries that replace earlier ones", async () => {
    await expectRefused(store(), tgz([MODEL, MODEL]), "archive entry 'model.mjs' appears more than once");
    await expectRefused(
      store(),
      tgz([MODEL, { path: "./model.mjs", type: "SymbolicLink", linkpath: "/etc/passwd" }]),
      "archive entry './model.mjs' links outside the model folder (to '/etc/passwd')",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "./model.mjs", type: "SymbolicLink", linkpath: "other" }]),
      "archive entry './model.mjs' appears more than once",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "./", type: "SymbolicLink", linkpath: "sub" }]),
      "archive entry './' would replace the model folder itself",
    );
  });

  it("hard links outside the folder or to nothing earlier", async () => {
    await expectRefused(
      store(),
      tgz([MODEL, { path: "h", type: "Link", linkpath: "../x" }]),
      "archive entry 'h' links outside the model folder (to '../x')",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "h", type: "Link", linkpath: "/etc/passwd" }]),
      "archive entry 'h' links outside the model folder (to '/etc/passwd')",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "h", type: "Link", linkpath: "missing" }]),
      "archive entry 'h' is a hard link to 'missing', which is not a file earlier in the archive",
    );
    await expectRefused(
      store(),
      tgz([{ path: "h", type: "Link", linkpath: "model.mjs" }, MODEL]),
      "archive entry 'h' is a hard link to 'model.mjs', which is not a file earlier in the archive",
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "d/", type: "Directory" }, { path: "h", type: "Link", linkpath: "d" }]),
      "archive entry 'h' is a hard link to 'd', which is not a file earlier in the archive",
    );
    const { dir } = await store().put(
      chunks(tgz([MODEL, { path: "h", type: "Link", linkpath: "./model.mjs" }])),
    );
    expect(await readFile(path.join(dir, "h"), "utf8")).toBe(MODEL.body);
  });

  it("devices, FIFOs and other entry types", async () => {
    const only = "a model folder may hold only files, directories and links";
    await expectRefused(
      store(),
      tgz([MODEL, { path: "dev/tty", type: "CharacterDevice" }]),
      `archive entry 'dev/tty' is a character device; ${only}`,
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "sda", type: "BlockDevice" }]),
      `archive entry 'sda' is a block device; ${only}`,
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "pipe", type: "FIFO" }]),
      `archive entry 'pipe' is a FIFO (named pipe); ${only}`,
    );
    await expectRefused(
      store(),
      tgz([MODEL, { path: "sparse", type: "SparseFile" }]),
      `archive entry 'sparse' is of unsupported type 'SparseFile'; ${only}`,
    );
  });

  it("archives that expand beyond the extraction limit (gzip bombs)", async () => {
    const bomb = tgz([MODEL, { path: "zeros", body: Buffer.alloc(8 * 1024 * 1024) }]);
    expect(bomb.length).toBeLessThan(64 * 1024);
    await expectRefused(
      store({ maxExtractedBytes: 64 * 1024 }),
      bomb,
      "archive expands to more than the 64 KB limit",
    );
    // The default is ten times the upload limit.
    await expectRefused(
      store({ maxUploadBytes: 20 * 1024 }),
      bomb,
      "archive expands to more than the 200 KB limit",
    );
    // Many files, each small.
    const many = tgz(Array.from({ length: 20 }, (_, i) => ({ path: `f${i}`, body: Buffer.alloc(4096) })));
    await expectRefused(
      store({ maxExtractedBytes: 64 * 1024 }),
      many,
      "archive expands to more than the 64 KB limit",
    );
    // Zeros after the end of the archive count too, though no file holds them.
    const trailing = gzipSync(Buffer.concat([rawTar([MODEL]), Buffer.alloc(16 * 1024 * 1024)]));
    await expectRefused(
      store({ maxExtractedBytes: 64 * 1024 }),
      trailing,
      "archive expands to more than the 64 KB limit",
    );
    // Under the limit, the same shapes are fine.
    await expect(store({ maxExtractedBytes: 128 * 1024 }).put(chunks(many))).resolves.toBeTruthy();
  });

  it("archives with too many entries", async () => {
    const five = tgz(Array.from({ length: 5 }, (_, i) => ({ path: `f${i}`, body: "x" })));
    await expectRefused(store({ maxEntries: 3 }), five, "archive holds more than 3 entries");
  });
});

describe("modelRoot", () => {
  it("descends into a folder that was tarred as itself", async () => {
    const parent = await folder({ "mymodel/model.mjs": "export default class {}\n", "mymodel/lib/a.js": "" });
    const { dir } = await store().put(chunks(await pack(parent, ["mymodel"])));
    expect(await modelRoot(dir)).toBe(path.join(dir, "mymodel"));
    expect(await readFile(path.join(await modelRoot(dir), "model.mjs"), "utf8")).toBe(
      "export default class {}\n",
    );
  });

  it("ignores macOS metadata beside the folder", async () => {
    const dir = await folder({ "mymodel/model.mjs": "", "._mymodel": "", ".DS_Store": "" });
    expect(await modelRoot(dir)).toBe(path.join(dir, "mymodel"));
  });

  it("stays at the top otherwise", async () => {
    const flat = await folder({ "model.mjs": "", "lib/a.js": "" });
    expect(await modelRoot(flat)).toBe(flat);
    const oneFile = await folder({ "model.mjs": "" });
    expect(await modelRoot(oneFile)).toBe(oneFile);
    const twoDirs = await folder({ "a/model.mjs": "", "b/x": "" });
    expect(await modelRoot(twoDirs)).toBe(twoDirs);
    const markerDir = await folder({ "hangar.json/x": "" });
    expect(await modelRoot(markerDir)).toBe(markerDir);
  });
});

describe("ArtifactStore paths and housekeeping", () => {
  it("refuses hashes that are not sha256 hex", () => {
    expect(() => store().dir("../../etc")).toThrow("invalid artifact hash '../../etc'");
    expect(() => store().archivePath("ABC")).toThrow("invalid artifact hash");
  });

  it("reports unknown hashes as absent", async () => {
    expect(await store().has("0".repeat(64))).toBe(false);
  });

  it("sweeps what interrupted puts left behind, but not puts in progress", async () => {
    await mkdir(path.join(root, ".tmp-old"), { recursive: true });
    await writeFile(path.join(root, ".tmp-old/partial"), "x");
    await writeFile(path.join(root, ".tmp-old.tar.gz"), "x");
    await writeFile(path.join(root, ".tmp-new.tar.gz"), "x");
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(path.join(root, ".tmp-old"), old, old);
    await utimes(path.join(root, ".tmp-old.tar.gz"), old, old);
    const kept = await store().put(chunks(tgz([MODEL])));

    expect(await store().sweep()).toBe(2);
    expect(await rootListing()).toEqual([".tmp-new.tar.gz", kept.hash, `${kept.hash}.tar.gz`].sort());
  });
});
