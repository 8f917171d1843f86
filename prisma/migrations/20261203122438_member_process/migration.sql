-- AlterTable
ALTER TABLE "Member" ADD COLUMN     "process" TEXT NOT NULL DEFAULT '';
