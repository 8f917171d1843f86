/**
 * Where the members of one Hangar share artifacts (API.md section 10): the upload of each, by content
 * hash, so that any member can build a push another member received. SharedArtifacts is the seam an
 * S3-compatible store would implement; DatabaseArtifacts keeps them in PostgreSQL, in chunks, so that
 * no upload is ever held whole in memory on either side.
 *
 * Writing is crash-safe without one long transaction: the blob row comes first (marked used now, so
 * retention leaves it alone), then the chunks, then `complete`. Readers only read complete blobs, and
 * verify length and hash before anything is extracted from what they read.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import type { PrismaClient } from "../generated/prisma/client.ts";

export interface SharedArtifacts {
  /** Shares the upload at `file` (`size` bytes, sha256 `hash`) unless it is shared already; either way marks it used. */
  share(hash: string, file: string, size: number): Promise<void>;
  /** Writes the shared upload of `hash` to the new file `file`, verified; false when no member shared it. */
  fetch(hash: string, file: string): Promise<boolean>;
  /** Every shared upload, with when a push last referred to it (ms since the epoch). */
  list(): Promise<{ hash: string; usedAt: number }[]>;
  /** Removes a shared upload, unless it was marked used at or after `unusedBefore` (ms). */
  remove(hash: string, unusedBefore: number): Promise<boolean>;
}

/** An upload read back from the shared store is not the one that was shared. */
export class DamagedArtifactError extends Error {
  override readonly name = "DamagedArtifactError";
}

/** 1 MiB: well under PostgreSQL's limits, few enough rows for a large model. */
const CHUNK_BYTES = 1024 * 1024;
/** Chunks fetched per query while reading: bounds the memory of one read. */
const READ_BATCH = 4;

export class DatabaseArtifacts implements SharedArtifacts {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly chunkBytes = CHUNK_BYTES,
  ) {}

  async share(hash: string, file: string, size: number): Promise<void> {
    const [row] = await this.prisma.$queryRaw<{ complete: boolean }[]>`
      INSERT INTO "ArtifactBlob" (hash, complete, "usedAt") VALUES (${hash}, false, now())
      ON CONFLICT (hash) DO UPDATE SET "usedAt" = now()
      RETURNING complete`;
    if (row?.complete) return;
    const handle = await open(file, constants.O_RDONLY);
    try {
      const buffer = Buffer.alloc(this.chunkBytes);
      for (let seq = 0, offset = 0; offset < size; seq++) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(this.chunkBytes, size - offset), offset);
        if (bytesRead === 0) throw new Error(`artifact ${hash} is shorter than ${size} bytes`);
        // A member sharing the same bytes at the same time writes the same chunks.
        await this.prisma.artifactChunk.createMany({
          data: [{ hash, seq, data: new Uint8Array(buffer.subarray(0, bytesRead)) }],
          skipDuplicates: true,
        });
        offset += bytesRead;
      }
    } finally {
      await handle.close();
    }
    await this.prisma.artifactBlob.update({ where: { hash }, data: { complete: true, size } });
  }

  async fetch(hash: string, file: string): Promise<boolean> {
    const blob = await this.prisma.artifactBlob.findUnique({
      where: { hash },
      select: { complete: true, size: true },
    });
    if (!blob?.complete || blob.size === null) return false;
    const size = Number(blob.size);
    const digest = createHash("sha256");
    let written = 0;
    const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      for (let seq = 0; written < size; ) {
        const chunks = await this.prisma.artifactChunk.findMany({
          where: { hash, seq: { gte: seq, lt: seq + READ_BATCH } },
          orderBy: { seq: "asc" },
          select: { seq: true, data: true },
        });
        if (chunks.length === 0) break;
        for (const chunk of chunks) {
          if (chunk.seq !== seq) throw new DamagedArtifactError(`artifact ${hash} lacks chunk ${seq}`);
          digest.update(chunk.data);
          await handle.write(chunk.data);
          written += chunk.data.length;
          seq++;
        }
      }
    } finally {
      await handle.close();
    }
    if (written !== size) {
      throw new DamagedArtifactError(`artifact ${hash} has ${written} of its ${size} bytes`);
    }
    if (digest.digest("hex") !== hash)
      throw new DamagedArtifactError(`artifact ${hash} does not match its hash`);
    return true;
  }

  async list(): Promise<{ hash: string; usedAt: number }[]> {
    const rows = await this.prisma.artifactBlob.findMany({ select: { hash: true, usedAt: true } });
    return rows.map((row) => ({ hash: row.hash, usedAt: row.usedAt.getTime() }));
  }

  async remove(hash: string, unusedBefore: number): Promise<boolean> {
    // One statement: a share marking it used now either happens first (nothing is removed) or finds no
    // row and writes the blob anew. Its chunks go with it (ON DELETE CASCADE).
    const removed = await this.prisma.artifactBlob.deleteMany({
      where: { hash, usedAt: { lt: new Date(unusedBefore) } },
    });
    return removed.count > 0;
  }
}
