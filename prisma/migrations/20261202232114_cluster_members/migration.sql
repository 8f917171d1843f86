-- AlterTable: rows of earlier starts are named by their id, and expire 15 s after they were last seen.
ALTER TABLE "Member" ADD COLUMN     "epoch" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN     "expiresAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN     "host" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "name" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "pid" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "url" TEXT NOT NULL DEFAULT '';

UPDATE "Member" SET "name" = "id", "expiresAt" = "lastSeenAt" + interval '15 seconds';

ALTER TABLE "Member" ALTER COLUMN "name" DROP DEFAULT;

-- CreateIndex
CREATE INDEX "Member_name_epoch_idx" ON "Member"("name", "epoch");
