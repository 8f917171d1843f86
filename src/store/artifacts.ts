/**
 * The artifact store: uploaded model folders (gzip'd tars, API.md section 2), kept by content hash.
 *
 * Layout under `root`:
 *   <hash>.tar.gz   the upload, byte for byte
 *   <hash>/         its extracted model folder
 *   .tmp-<id>*      work in progress (an upload being received, a folder being extracted)
 *
 * Archives come from users, so extraction trusts nothing in them. Every entry is checked before anything is
 * written for it, and the writer only ever creates names that do not exist yet inside directories it made
 * itself, so no entry can be written through a link. Anything refused leaves no trace in the root.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, constants as fsConstants } from "node:fs";
import {
  chmod,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  utimes,
} from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { UserError } from "../domain/errors.ts";
import type { SharedArtifacts } from "./shared-artifacts.ts";

/** A refused upload. The message is shown to the user as is. */
export class InvalidArchiveError extends Error {
  override readonly name = "InvalidArchiveError";
}

export interface StoredArtifact {
  /** sha256 of the uploaded bytes, lowercase hex. */
  hash: string;
  /** The extracted model folder (see also modelRoot). */
  dir: string;
  /** Size of the upload in bytes. */
  size: number;
  /** True when these bytes were already stored: nothing was written. */
  deduplicated: boolean;
}

export interface ArtifactStoreOptions {
  root: string;
  maxUploadBytes: number;
  /** Cap on the total size of the extracted files; default 10 x maxUploadBytes (guards against gzip bombs). */
  maxExtractedBytes?: number;
  /** Cap on the number of archive entries (an archive of millions of empty files is a bomb too). */
  maxEntries?: number;
  /**
   * Where the members of one Hangar share uploads (PostgreSQL); null: this disk is the only store (the
   * embedded database). The disk is then a cache of it.
   */
  shared?: SharedArtifacts | null;
}

export type UploadSource = AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | NodeJS.ReadableStream;

const HASH_PATTERN = /^[0-9a-f]{64}$/;
const ARCHIVE_NAME = /^([0-9a-f]{64})\.tar\.gz$/;
const TEMP_PREFIX = ".tmp-";
const DEFAULT_MAX_ENTRIES = 100_000;
/** The file names that mark a model folder (API.md section 2). */
const MODEL_MARKERS = new Set(["model.mjs", "model.js", "hangar.json"]);
/** What macOS tar adds beside the folder (resource forks, Finder state); not part of the model. */
const MAC_METADATA = /^(\._.*|\.DS_Store|__MACOSX)$/;
/** Linux's limit on links followed in one lookup. */
const MAX_SYMLINK_HOPS = 40;
/**
 * Room for tar's own bytes (headers, padding, pax records) beyond the file contents. The decompressed
 * stream may exceed maxExtractedBytes by at most this, which stops bombs hidden where no file size counts
 * them (zeros after the end of the archive, giant extended headers).
 */
const STREAM_SLACK_BYTES = 1024 * 1024;
const STREAM_SLACK_PER_ENTRY = 4096;
/** Creating a file that must not exist yet, and never through a symbolic link. */
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export class ArtifactStore {
  readonly root: string;
  readonly maxUploadBytes: number;
  readonly maxExtractedBytes: number;
  readonly maxEntries: number;
  readonly shared: SharedArtifacts | null;

  constructor(opts: ArtifactStoreOptions) {
    this.root = path.resolve(opts.root);
    this.maxUploadBytes = positive("maxUploadBytes", opts.maxUploadBytes);
    this.maxExtractedBytes = positive(
      "maxExtractedBytes",
      opts.maxExtractedBytes ?? 10 * opts.maxUploadBytes,
    );
    this.maxEntries = positive("maxEntries", opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.shared = opts.shared ?? null;
  }

  /**
   * Stores an upload: receives it to a temporary file while hashing it, refuses it unless it is a sound
   * gzip'd tar of a model folder, extracts it and moves archive and folder into place, and shares it with
   * the other members. The same bytes are stored once; a second put of them only reports the first.
   */
  async put(source: UploadSource): Promise<StoredArtifact> {
    const tempArchive = await this.tempPath("upload");
    try {
      const { hash, size } = await this.receive(source, tempArchive);
      const deduplicated = await this.publish(hash, tempArchive);
      await this.shared?.share(hash, this.archivePath(hash), size);
      return { hash, dir: this.dir(hash), size, deduplicated };
    } finally {
      await rm(tempArchive, { force: true });
    }
  }

  /**
   * Makes sure an artifact is on this disk, fetching it from the shared store (and checking it as an upload
   * is checked) when another member received it. False when neither has it.
   */
  async ensure(hash: string): Promise<boolean> {
    if ((await this.has(hash)) && (await this.markUsed(hash))) return true;
    if (!this.shared) return false;
    const tempArchive = await this.tempPath("fetch");
    try {
      if (!(await this.shared.fetch(checkHash(hash), tempArchive))) return false;
      await this.publish(hash, tempArchive);
      return true;
    } finally {
      await rm(tempArchive, { force: true });
    }
  }

  /**
   * Extracts a received archive and moves archive and folder into place; true when these bytes were stored
   * already (then nothing was written). The archive file is moved, or left for the caller to remove.
   */
  private async publish(hash: string, archive: string): Promise<boolean> {
    // Stored already: marked as used now, so the retention sweep does not take it before the deployment
    // row that will reference it is written. Gone in between (the sweep took it): stored anew.
    if ((await this.has(hash)) && (await this.markUsed(hash))) return true;
    const tempDir = await this.tempPath("extract");
    try {
      await mkdir(tempDir, { mode: 0o700 });
      await new Extraction(tempDir, this.maxExtractedBytes, this.maxEntries).run(archive);
      // The archive goes first: a published folder then always has its archive beside it. Replacing an
      // archive a concurrent put of the same bytes has just moved there changes no byte.
      await rename(archive, this.archivePath(hash));
      try {
        await rename(tempDir, this.dir(hash));
      } catch (error) {
        // A concurrent put of the same bytes got there first; its folder is identical to ours.
        if (!hasCode(error, "ENOTEMPTY", "EEXIST") || !(await this.has(hash))) throw error;
        return true;
      }
      return false;
    } finally {
      await rm(tempDir, { recursive: true, force: true });
    }
  }

  /** The extracted model folder of a stored artifact. */
  dir(hash: string): string {
    return path.join(this.root, checkHash(hash));
  }

  /** The stored upload of an artifact. */
  archivePath(hash: string): string {
    return path.join(this.root, `${checkHash(hash)}.tar.gz`);
  }

  async has(hash: string): Promise<boolean> {
    const [dir, archive] = await Promise.all([
      statOrNull(this.dir(hash)),
      statOrNull(this.archivePath(hash)),
    ]);
    return dir?.isDirectory() === true && archive?.isFile() === true;
  }

  /**
   * Records that an artifact is in use, in its archive's modification time (what the retention sweep
   * reads as "last referenced"). False when the artifact is not stored.
   */
  async markUsed(hash: string, at = new Date()): Promise<boolean> {
    try {
      await utimes(this.archivePath(hash), at, at);
      return true;
    } catch (error) {
      if (hasCode(error, "ENOENT")) return false;
      throw error;
    }
  }

  /** The stored artifacts, each with when it was last marked used (ms since the epoch). */
  async stored(): Promise<{ hash: string; usedAt: number }[]> {
    const names = await readdir(this.root).catch((error: unknown) => {
      if (hasCode(error, "ENOENT")) return [] as string[];
      throw error;
    });
    const out: { hash: string; usedAt: number }[] = [];
    for (const name of names) {
      const hash = ARCHIVE_NAME.exec(name)?.[1];
      if (!hash) continue;
      const info = await statOrNull(path.join(this.root, name), true);
      if (info?.isFile()) out.push({ hash, usedAt: info.mtimeMs });
    }
    return out;
  }

  /**
   * Removes a stored artifact, unless it was marked used at or after `unusedBefore` (ms): a put of the
   * same bytes may have just returned it. Folder and archive are first renamed out of the way (from then on
   * has() is false and a put stores them anew), then the mark is checked again, then they are deleted.
   */
  async remove(hash: string, unusedBefore: number): Promise<boolean> {
    const tomb = path.join(this.root, `${TEMP_PREFIX}gone-${randomBytes(8).toString("hex")}`);
    const movedDir = await renameIfPresent(this.dir(hash), tomb);
    const movedArchive = await renameIfPresent(this.archivePath(hash), `${tomb}.tar.gz`);
    const mark = movedArchive ? await statOrNull(`${tomb}.tar.gz`, true) : null;
    if (mark && mark.mtimeMs >= unusedBefore) {
      // Used again since it was listed: put it back. Should a put have stored it anew meanwhile, its copy
      // (the same bytes) stays and ours goes.
      if (movedDir && !(await renameIfPresent(tomb, this.dir(hash)).catch(() => false))) {
        await rm(tomb, { recursive: true, force: true });
      }
      await rename(`${tomb}.tar.gz`, this.archivePath(hash));
      return false;
    }
    await Promise.all([rm(tomb, { recursive: true, force: true }), rm(`${tomb}.tar.gz`, { force: true })]);
    return movedDir || movedArchive;
  }

  /** A fresh path for temporary work (an upload being received, a folder being extracted), swept. */
  async tempPath(label: string): Promise<string> {
    await mkdir(this.root, { recursive: true });
    return path.join(this.root, `${TEMP_PREFIX}${label}-${randomBytes(8).toString("hex")}`);
  }

  /**
   * Removes what interrupted puts left behind (a crash mid-upload or mid-extraction). Only entries older
   * than `olderThanMs` go, so puts still running, here or in another process sharing the root, are safe.
   */
  async sweep(olderThanMs = 60 * 60 * 1000): Promise<number> {
    const names = await readdir(this.root).catch((error: unknown) => {
      if (hasCode(error, "ENOENT")) return [] as string[];
      throw error;
    });
    let removed = 0;
    for (const name of names) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const target = path.join(this.root, name);
      const info = await statOrNull(target, true);
      if (info && Date.now() - info.mtimeMs > olderThanMs) {
        await rm(target, { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }

  private async receive(source: UploadSource, file: string): Promise<{ hash: string; size: number }> {
    const hash = createHash("sha256");
    let size = 0;
    let head = Buffer.alloc(0);
    const handle = await open(file, CREATE_FLAGS, 0o600);
    try {
      for await (const chunk of chunksOf(source)) {
        if (chunk.length === 0) continue;
        size += chunk.length;
        // Throwing inside for-await ends the source too (destroys the stream, cancels the web stream).
        if (size > this.maxUploadBytes) {
          throw new InvalidArchiveError(`upload exceeds the ${formatBytes(this.maxUploadBytes)} limit`);
        }
        if (head.length < 2) {
          // Refuse non-gzip data at its first bytes rather than after receiving all of it.
          head = Buffer.concat([head, chunk.subarray(0, 2 - head.length)]);
          if (head[0] !== 0x1f || (head.length > 1 && head[1] !== 0x8b)) throw notGzip();
        }
        hash.update(chunk);
        await writeAll(handle, chunk);
      }
    } finally {
      await handle.close();
    }
    if (size === 0) throw new InvalidArchiveError("not a gzip'd tar archive: the upload is empty");
    if (head.length < 2) throw notGzip();
    return { hash: hash.digest("hex"), size };
  }
}

/**
 * The folder to run: users often tar the folder itself (`tar czf m.tgz mymodel/`) rather than its contents.
 * When `dir` holds nothing but one directory (macOS metadata aside) and no model file, that directory is
 * the model folder; otherwise `dir` is.
 */
export async function modelRoot(dir: string): Promise<string> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !MAC_METADATA.test(e.name));
  const only = entries[0];
  if (entries.length === 1 && only && only.isDirectory() && !MODEL_MARKERS.has(only.name)) {
    return path.join(dir, only.name);
  }
  return dir;
}

type Kind = "dir" | "file" | "symlink";

interface DirInfo {
  mode: number;
  mtime: Date | undefined;
}

/** One archive extracted into a fresh, private directory, checking each entry before writing it. */
class Extraction {
  /** What each path (relative, normalised; "" is the folder itself) has been made into so far. */
  private readonly kinds = new Map<string, Kind>([["", "dir"]]);
  /** Directory modes are applied last: a read-only directory would block writing its contents. */
  private readonly dirs = new Map<string, DirInfo>([["", { mode: 0o755, mtime: undefined }]]);
  private readonly symlinks: { rel: string; shown: string; target: string }[] = [];
  /** Aborted at the first failure, so that nothing keeps waiting for data that will never come. */
  private readonly abort = new AbortController();
  private failure: unknown;
  private entries = 0;
  private files = 0;
  private bytes = 0;
  private sawEof = false;

  constructor(
    private readonly dest: string,
    private readonly maxBytes: number,
    private readonly maxEntries: number,
  ) {}

  async run(archive: string): Promise<void> {
    // We decompress ourselves (to count the bytes); zstd sniffing is off so the parser sees plain tar only.
    const parser = new Parser({ strict: true, zstd: false });
    let chain: Promise<void> = Promise.resolve();
    parser.on("entry", (entry: ReadEntry) => {
      if (++this.entries > this.maxEntries) {
        this.fail(new InvalidArchiveError(`archive holds more than ${this.maxEntries} entries`));
      }
      // Entries are handled one at a time, in archive order: each check depends on what came before.
      chain = chain
        .then(() => (this.failure === undefined ? this.onEntry(entry) : undefined))
        .catch((error: unknown) => this.fail(error))
        .finally(() => entry.resume());
    });
    parser.on("ignoredEntry", (entry: ReadEntry) => this.fail(unsupported(entry)));
    parser.on("eof", () => {
      this.sawEof = true;
    });
    parser.on("error", (error: Error) => this.fail(this.tarError(error)));
    let ended = false;
    parser.on("end", () => {
      ended = true;
    });
    try {
      await this.feed(archive, parser);
      parser.end();
      if (!ended) await this.until(parser, "end");
    } catch (error) {
      this.fail(error);
    }
    // Writes in progress finish (or fail) before the caller may remove the directory.
    await chain;
    if (this.failure !== undefined) throw this.failure;
    await this.finish();
  }

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.abort.abort(error);
  }

  /** Waits for `event`, or rejects at the first failure. */
  private until(emitter: Parser, event: string): Promise<void> {
    const signal = this.abort.signal;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        emitter.off(event, onEvent);
        reject(signal.reason);
      };
      const onEvent = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      emitter.once(event, onEvent);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Decompresses the archive into the parser, counting every byte. */
  private async feed(archive: string, parser: Parser): Promise<void> {
    const input = createReadStream(archive);
    const gunzip = createGunzip();
    input.on("error", (error) => gunzip.destroy(error));
    input.pipe(gunzip);
    let total = 0;
    try {
      for await (const chunk of gunzip as AsyncIterable<Buffer>) {
        if (this.failure !== undefined) return;
        if (total === 0 && chunk[0] === 0x1f && chunk[1] === 0x8b) {
          // The parser would gunzip this inner layer itself, outside our byte count.
          throw notTar("the gzip data holds another gzip file, not a tar archive");
        }
        total += chunk.length;
        if (total > this.maxBytes + STREAM_SLACK_BYTES + STREAM_SLACK_PER_ENTRY * this.entries) {
          throw this.tooBig();
        }
        // Past the end-of-archive marker tar ignores the rest; we still read it to check the gzip data.
        if (this.sawEof) continue;
        if (!parser.write(chunk)) {
          await this.until(parser, "drain");
        }
      }
    } catch (error) {
      throw gzipError(error) ?? error;
    } finally {
      input.destroy();
      gunzip.destroy();
    }
  }

  private async onEntry(entry: ReadEntry): Promise<void> {
    const shown = show(entry.path);
    const rel = this.entryPath(entry.path, shown);
    switch (entry.type) {
      case "Directory":
      case "GNUDumpDir":
        return this.makeDir(rel, shown, entry);
      case "File":
      case "OldFile":
      case "ContiguousFile":
        return this.writeFile(rel, shown, entry);
      case "SymbolicLink":
        return this.makeSymlink(rel, shown, entry.linkpath ?? "");
      case "Link":
        return this.makeHardLink(rel, shown, entry.linkpath ?? "");
      default:
        throw unsupported(entry);
    }
  }

  /** The entry's path relative to the folder, normalised; refuses anything that could leave the folder. */
  private entryPath(raw: string, shown: string): string {
    if (raw.includes("\0")) throw new InvalidArchiveError(`archive entry '${shown}' has an invalid name`);
    if (raw.startsWith("/")) throw new InvalidArchiveError(`archive entry '${shown}' has an absolute path`);
    // Backslashes count as separators here too: Windows tools read them so.
    if (raw.split(/[\\/]/).includes("..")) {
      throw new InvalidArchiveError(`archive entry '${shown}' escapes the model folder`);
    }
    const rel = raw
      .split("/")
      .filter((part) => part !== "" && part !== ".")
      .join("/");
    const resolved = path.resolve(this.dest, rel);
    if (resolved !== this.dest && !resolved.startsWith(this.dest + path.sep)) {
      throw new InvalidArchiveError(`archive entry '${shown}' escapes the model folder`);
    }
    return rel;
  }

  private abs(rel: string): string {
    return path.join(this.dest, rel);
  }

  /**
   * Creates the missing parent directories of `rel`. A parent that is a link or a file is refused, so
   * nothing is ever written through a symbolic link the archive made.
   */
  private async makeParents(rel: string, shown: string): Promise<void> {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const kind = this.kinds.get(parent);
      if (kind === "symlink") {
        throw new InvalidArchiveError(
          `archive entry '${shown}' is inside the symbolic link '${show(parent)}'`,
        );
      }
      if (kind === "file") {
        throw new InvalidArchiveError(
          `archive entry '${shown}' is inside '${show(parent)}', which is a file`,
        );
      }
      if (kind === undefined) {
        await create(shown, () => mkdir(this.abs(parent), { mode: 0o700 }));
        this.kinds.set(parent, "dir");
        this.dirs.set(parent, { mode: 0o755, mtime: undefined });
      }
    }
  }

  /** Records that `rel` becomes a `kind`; false when it is a directory that already exists. */
  private claim(rel: string, shown: string, kind: Kind): boolean {
    const existing = this.kinds.get(rel);
    if (existing === "dir" && kind === "dir") return false;
    if (rel === "") {
      throw new InvalidArchiveError(`archive entry '${shown}' would replace the model folder itself`);
    }
    // Replacing an earlier entry would let an archive swap a checked file for a link (or back).
    if (existing !== undefined) {
      throw new InvalidArchiveError(`archive entry '${shown}' appears more than once`);
    }
    this.kinds.set(rel, kind);
    return true;
  }

  private async makeDir(rel: string, shown: string, entry: ReadEntry): Promise<void> {
    await this.makeParents(rel, shown);
    if (this.claim(rel, shown, "dir")) await create(shown, () => mkdir(this.abs(rel), { mode: 0o700 }));
    this.dirs.set(rel, { mode: entry.mode ?? 0o755, mtime: entry.mtime });
  }

  private async writeFile(rel: string, shown: string, entry: ReadEntry): Promise<void> {
    // Checked against the header, before a byte is written.
    this.bytes += entry.size;
    if (this.bytes > this.maxBytes) throw this.tooBig();
    await this.makeParents(rel, shown);
    this.claim(rel, shown, "file");
    this.files++;
    const handle = await create(shown, () => open(this.abs(rel), CREATE_FLAGS, 0o600));
    try {
      await this.copy(entry, handle);
      // chmod rather than open's mode, which the umask would trim.
      // Readable by all: a fenced replica runs as a uid of its own (and its code is mounted read-only).
      await handle.chmod(((entry.mode ?? 0o644) & 0o777) | 0o444);
      if (validDate(entry.mtime)) await handle.utimes(entry.mtime, entry.mtime);
    } finally {
      await handle.close();
    }
  }

  /** Writes the entry's data; a failure elsewhere (truncation, a limit) ends the wait, as the entry never will. */
  private copy(entry: ReadEntry, handle: FileHandle): Promise<void> {
    const signal = this.abort.signal;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      let writing: Promise<void> = Promise.resolve();
      const settle = (error?: unknown) => {
        signal.removeEventListener("abort", onAbort);
        entry.off("data", onData);
        entry.off("end", onEnd);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onAbort = () => settle(signal.reason);
      // One write at a time, in order: the entry waits while its chunk is written.
      const onData = (chunk: Buffer) => {
        entry.pause();
        writing = writeAll(handle, chunk).then(() => void entry.resume(), settle);
      };
      const onEnd = () => void writing.then(() => settle());
      signal.addEventListener("abort", onAbort, { once: true });
      entry.on("data", onData);
      entry.on("end", onEnd);
    });
  }

  private async makeSymlink(rel: string, shown: string, target: string): Promise<void> {
    // A quick lexical check here; finish() follows the links on disk, since one link can lead through another.
    if (
      target.includes("\0") ||
      target.startsWith("/") ||
      isOutside(path.posix.normalize(path.posix.join(path.posix.dirname(rel), target)))
    ) {
      throw linksOutside(shown, target);
    }
    await this.makeParents(rel, shown);
    this.claim(rel, shown, "symlink");
    await create(shown, () => symlink(target, this.abs(rel)));
    this.symlinks.push({ rel, shown, target });
  }

  private async makeHardLink(rel: string, shown: string, rawTarget: string): Promise<void> {
    // Hard link targets are archive paths, relative to the folder rather than to the link.
    const target = show(rawTarget);
    if (rawTarget.startsWith("/") || rawTarget.split(/[\\/]/).includes("..")) {
      throw linksOutside(shown, target);
    }
    const targetRel = this.entryPath(rawTarget, target);
    // Only to a file made earlier: never to a directory, a symbolic link, or anything outside.
    if (this.kinds.get(targetRel) !== "file") {
      throw new InvalidArchiveError(
        `archive entry '${shown}' is a hard link to '${target}', which is not a file earlier in the archive`,
      );
    }
    await this.makeParents(rel, shown);
    this.claim(rel, shown, "file");
    this.files++;
    await create(shown, () => link(this.abs(targetRel), this.abs(rel)));
  }

  private async finish(): Promise<void> {
    if (this.files === 0) throw new InvalidArchiveError("archive holds no files");
    for (const { rel, shown, target } of this.symlinks) {
      if (await this.leadsOutside(rel)) throw linksOutside(shown, target);
    }
    for (const [rel, { mode, mtime }] of this.dirs) {
      // The owner keeps full access so the store can always remove the folder again.
      await chmod(this.abs(rel), (mode & 0o1777) | 0o755);
      if (validDate(mtime)) await utimes(this.abs(rel), mtime, mtime);
    }
  }

  /**
   * Follows the symbolic link at `rel` on disk, through any further links, and says whether it ends
   * outside the folder. A part that does not exist is taken as a plain directory, as if created later.
   */
  private async leadsOutside(rel: string): Promise<boolean> {
    const reached = rel.split("/");
    const pending: string[] = [];
    let hops = 0;
    let next: string | undefined = reached.pop();
    while (next !== undefined) {
      if (next === "..") {
        if (reached.length === 0) return true;
        reached.pop();
      } else if (next !== "" && next !== ".") {
        reached.push(next);
        const here = path.join(this.dest, ...reached);
        if ((await statOrNull(here, true))?.isSymbolicLink()) {
          // Linux gives up on longer chains (ELOOP), so such a link leads nowhere.
          if (++hops > MAX_SYMLINK_HOPS) return false;
          const target = await readlink(here);
          if (target.startsWith("/")) return true;
          reached.pop();
          pending.unshift(...target.split("/"));
        }
      }
      next = pending.shift();
    }
    return false;
  }

  private tooBig(): InvalidArchiveError {
    return new InvalidArchiveError(`archive expands to more than the ${formatBytes(this.maxBytes)} limit`);
  }

  /** tar's complaints, reworded for the user. */
  private tarError(error: Error & { tarCode?: string }): Error {
    const reason = error.message.replace(/^TAR_[A-Z_]+: /, "");
    if (error.tarCode === "TAR_BAD_ARCHIVE") {
      // An archive of nothing but its end marker: tar calls that unrecognised, the user calls it empty.
      if (this.sawEof && this.entries === 0) return new InvalidArchiveError("archive holds no files");
      if (reason.startsWith("Truncated")) return notTar("the tar data is truncated");
      return notTar("the gzip data does not hold a tar archive");
    }
    if (error.tarCode === "TAR_ENTRY_INVALID") {
      return this.entries === 0
        ? notTar("the gzip data does not hold a tar archive")
        : notTar(`a tar header is corrupt (${reason})`);
    }
    return notTar(reason);
  }
}

/** Runs a create/link call, turning name clashes and impossible names into refusals of the entry. */
async function create<T>(shown: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (error) {
    // EEXIST here means two entries share a name on this file system (case-insensitive, Unicode forms).
    if (hasCode(error, "EEXIST")) {
      throw new InvalidArchiveError(`archive entry '${shown}' clashes with another entry of the same name`);
    }
    if (hasCode(error, "ENAMETOOLONG")) {
      throw new InvalidArchiveError(`archive entry '${shown}' has a name that is too long`);
    }
    if (hasCode(error, "ENOTDIR", "EISDIR", "ELOOP", "EINVAL")) {
      throw new InvalidArchiveError(`archive entry '${shown}' cannot be extracted (${codeOf(error)})`);
    }
    throw error;
  }
}

function isOutside(normalised: string): boolean {
  return normalised === ".." || normalised.startsWith("../");
}

function linksOutside(shown: string, target: string): InvalidArchiveError {
  return new InvalidArchiveError(
    `archive entry '${shown}' links outside the model folder (to '${show(target)}')`,
  );
}

const SPECIAL_TYPES: Record<string, string> = {
  CharacterDevice: "a character device",
  BlockDevice: "a block device",
  FIFO: "a FIFO (named pipe)",
};

function unsupported(entry: ReadEntry): InvalidArchiveError {
  const shown = show(entry.path);
  if (entry.meta) return notTar(`the extended header of '${shown}' is too large`);
  const what = SPECIAL_TYPES[entry.type] ?? `of unsupported type '${entry.type}'`;
  return new InvalidArchiveError(
    `archive entry '${shown}' is ${what}; a model folder may hold only files, directories and links`,
  );
}

function notGzip(): InvalidArchiveError {
  return notTar("the data is not gzip-compressed");
}

function notTar(reason: string): InvalidArchiveError {
  return new InvalidArchiveError(`not a gzip'd tar archive: ${reason}`);
}

/** zlib's errors as refusals; anything else (an I/O error) is not the archive's fault. */
function gzipError(error: unknown): InvalidArchiveError | undefined {
  const code = codeOf(error);
  if (code === "Z_BUF_ERROR") return notTar("the gzip data is truncated");
  if (code?.startsWith("Z_") && error instanceof Error)
    return notTar(`the gzip data is corrupt (${error.message})`);
  return undefined;
}

/** A path as it may appear in a message: control characters escaped, very long names cut. */
function show(raw: string): string {
  let out = "";
  for (const ch of raw) {
    const code = ch.codePointAt(0) ?? 0;
    out += code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : ch;
  }
  return out.length > 200 ? `${out.slice(0, 200)}...` : out;
}

/** "100 MB", "1.5 KB", "512 bytes" (binary multiples, as upload limits are usually set). */
export function formatBytes(bytes: number): string {
  const units: [string, number][] = [
    ["GB", 1024 ** 3],
    ["MB", 1024 ** 2],
    ["KB", 1024],
  ];
  for (const [unit, factor] of units) {
    if (bytes >= factor) {
      const value = bytes / factor;
      return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} bytes`;
}

async function* chunksOf(source: UploadSource): AsyncGenerator<Buffer> {
  // Async iterables, web streams and Node streams all iterate; an old-style stream gets wrapped first.
  const iterable = (
    Symbol.asyncIterator in source ? source : new Readable().wrap(source as unknown as NodeJS.ReadableStream)
  ) as AsyncIterable<Uint8Array | string>;
  for await (const chunk of iterable) {
    yield typeof chunk === "string"
      ? Buffer.from(chunk)
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

function checkHash(hash: string): string {
  // The hash becomes a path: anything but a sha256 hex digest could point elsewhere.
  if (!HASH_PATTERN.test(hash)) throw new Error(`invalid artifact hash '${show(hash)}'`);
  return hash;
}

function validDate(date: Date | undefined): date is Date {
  return date !== undefined && Number.isFinite(date.getTime());
}

async function statOrNull(file: string, noFollow = false) {
  try {
    return await (noFollow ? lstat(file) : stat(file));
  } catch (error) {
    if (hasCode(error, "ENOENT", "ENOTDIR")) return null;
    throw error;
  }
}

/** Renames `from` to `to`; false when `from` does not exist. */
async function renameIfPresent(from: string, to: string): Promise<boolean> {
  try {
    await rename(from, to);
    return true;
  } catch (error) {
    if (hasCode(error, "ENOENT")) return false;
    throw error;
  }
}

function codeOf(error: unknown): string | undefined {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

function hasCode(error: unknown, ...codes: string[]): boolean {
  const code = codeOf(error);
  return code !== undefined && codes.includes(code);
}

/** Stores an upload; a bad archive is the user's error, reported on `source`. */
export async function storeUpload(
  artifacts: ArtifactStore,
  source: ReadableStream<Uint8Array>,
): Promise<StoredArtifact> {
  try {
    return await artifacts.put(source);
  } catch (error) {
    if (error instanceof InvalidArchiveError) throw new UserError("INVALID_INPUT", error.message, "source");
    throw error;
  }
}
