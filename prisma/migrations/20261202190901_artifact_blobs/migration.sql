-- CreateTable
CREATE TABLE "ArtifactBlob" (
    "hash" TEXT NOT NULL,
    "size" BIGINT,
    "complete" BOOLEAN NOT NULL DEFAULT false,
    "usedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "ArtifactBlob_pkey" PRIMARY KEY ("hash")
);

-- CreateTable
CREATE TABLE "ArtifactChunk" (
    "hash" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "data" BYTEA NOT NULL,

    CONSTRAINT "ArtifactChunk_pkey" PRIMARY KEY ("hash","seq")
);

-- CreateIndex
CREATE INDEX "ArtifactBlob_usedAt_idx" ON "ArtifactBlob"("usedAt");

-- AddForeignKey
ALTER TABLE "ArtifactChunk" ADD CONSTRAINT "ArtifactChunk_hash_fkey" FOREIGN KEY ("hash") REFERENCES "ArtifactBlob"("hash") ON DELETE CASCADE ON UPDATE CASCADE;

-- The chunks are gzip'd already: stored out of line as they are, without PostgreSQL compressing them again.
ALTER TABLE "ArtifactChunk" ALTER COLUMN "data" SET STORAGE EXTERNAL;
