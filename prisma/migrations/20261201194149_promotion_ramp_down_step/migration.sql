-- AlterTable
ALTER TABLE "Promotion" ADD COLUMN     "rampDownStepMs" INTEGER;
