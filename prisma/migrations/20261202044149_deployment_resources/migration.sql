-- AlterTable
ALTER TABLE "Deployment" ADD COLUMN     "resources" JSONB;
