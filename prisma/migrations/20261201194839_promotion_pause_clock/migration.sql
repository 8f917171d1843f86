-- AlterTable
ALTER TABLE "Promotion" ADD COLUMN     "pausedAt" TIMESTAMPTZ(3),
ADD COLUMN     "startPausedMs" INTEGER NOT NULL DEFAULT 0;
