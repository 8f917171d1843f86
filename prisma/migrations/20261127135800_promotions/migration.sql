-- CreateEnum
CREATE TYPE "PromotionStatus" AS ENUM ('RELEASING', 'RAMPING_UP', 'PAUSED', 'RAMPING_DOWN', 'SUCCEEDED', 'FAILED', 'CANCELED');

-- AlterTable
ALTER TABLE "Deployment" ADD COLUMN     "promotionAutoscaling" JSONB;

-- AlterTable
ALTER TABLE "Environment" ADD COLUMN     "promotionSettings" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
ALTER TABLE "ModelEvent" ADD COLUMN     "promotionId" TEXT,
ADD COLUMN     "snapshot" JSONB;

-- CreateTable
CREATE TABLE "Promotion" (
    "id" TEXT NOT NULL,
    "modelId" TEXT NOT NULL,
    "environmentId" TEXT NOT NULL,
    "activeEnvironmentId" TEXT,
    "sourceDeploymentId" TEXT NOT NULL,
    "deploymentId" TEXT,
    "previousDeploymentId" TEXT,
    "status" "PromotionStatus" NOT NULL DEFAULT 'RELEASING',
    "steps" JSONB NOT NULL,
    "settings" JSONB NOT NULL,
    "scaleDownPrevious" BOOLEAN NOT NULL DEFAULT true,
    "createdDeployment" BOOLEAN NOT NULL DEFAULT false,
    "percentTraffic" INTEGER NOT NULL DEFAULT 0,
    "canaryStage" INTEGER,
    "canaryStages" INTEGER,
    "stageStartedAt" TIMESTAMPTZ(3),
    "stageElapsedMs" INTEGER NOT NULL DEFAULT 0,
    "pausedFrom" "PromotionStatus",
    "rollForward" BOOLEAN NOT NULL DEFAULT false,
    "errorMessage" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMPTZ(3),
    "leaseOwner" TEXT,
    "leaseExpiresAt" TIMESTAMPTZ(3),

    CONSTRAINT "Promotion_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Promotion_activeEnvironmentId_key" ON "Promotion"("activeEnvironmentId");

-- CreateIndex
CREATE INDEX "Promotion_environmentId_createdAt_idx" ON "Promotion"("environmentId", "createdAt");

-- CreateIndex
CREATE INDEX "Promotion_status_idx" ON "Promotion"("status");

-- AddForeignKey
ALTER TABLE "ModelEvent" ADD CONSTRAINT "ModelEvent_promotionId_fkey" FOREIGN KEY ("promotionId") REFERENCES "Promotion"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Promotion" ADD CONSTRAINT "Promotion_environmentId_fkey" FOREIGN KEY ("environmentId") REFERENCES "Environment"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Promotion" ADD CONSTRAINT "Promotion_sourceDeploymentId_fkey" FOREIGN KEY ("sourceDeploymentId") REFERENCES "Deployment"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Promotion" ADD CONSTRAINT "Promotion_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Promotion" ADD CONSTRAINT "Promotion_previousDeploymentId_fkey" FOREIGN KEY ("previousDeploymentId") REFERENCES "Deployment"("id") ON DELETE SET NULL ON UPDATE CASCADE;
