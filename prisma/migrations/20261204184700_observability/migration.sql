-- TrafficSecond gains the environment a path came by (in its key) and cold starts; TrafficMinute keeps
-- its roll-up for the 24 h of metricsSeries; ColdStart records each wake a request caused with its phases.
-- AlterTable
ALTER TABLE "TrafficSecond" DROP CONSTRAINT "TrafficSecond_pkey",
ADD COLUMN     "coldStartLatency" INTEGER[] DEFAULT ARRAY[]::INTEGER[],
ADD COLUMN     "coldStartMs" DOUBLE PRECISION NOT NULL DEFAULT 0,
ADD COLUMN     "coldStarts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "environmentId" TEXT NOT NULL DEFAULT '',
ADD CONSTRAINT "TrafficSecond_pkey" PRIMARY KEY ("memberId", "deploymentId", "environmentId", "second");

-- CreateTable
CREATE TABLE "TrafficMinute" (
    "memberId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "environmentId" TEXT NOT NULL DEFAULT '',
    "minute" BIGINT NOT NULL,
    "answered" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "latencyMs" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "latency" INTEGER[] DEFAULT ARRAY[]::INTEGER[],
    "coldStarts" INTEGER NOT NULL DEFAULT 0,
    "coldStartMs" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "coldStartLatency" INTEGER[] DEFAULT ARRAY[]::INTEGER[],
    "writtenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "TrafficMinute_pkey" PRIMARY KEY ("memberId","deploymentId","environmentId","minute")
);

-- CreateTable
CREATE TABLE "ColdStart" (
    "id" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "modelId" TEXT NOT NULL,
    "environmentId" TEXT NOT NULL DEFAULT '',
    "memberId" TEXT NOT NULL,
    "replicaId" TEXT,
    "requestedAt" TIMESTAMPTZ(3) NOT NULL,
    "processStartedAt" TIMESTAMPTZ(3),
    "modelLoadedAt" TIMESTAMPTZ(3),
    "answeredAt" TIMESTAMPTZ(3) NOT NULL,
    "durationMs" DOUBLE PRECISION NOT NULL,

    CONSTRAINT "ColdStart_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "TrafficMinute_deploymentId_minute_idx" ON "TrafficMinute"("deploymentId", "minute");

-- CreateIndex
CREATE INDEX "TrafficMinute_minute_idx" ON "TrafficMinute"("minute");

-- CreateIndex
CREATE INDEX "ColdStart_deploymentId_answeredAt_idx" ON "ColdStart"("deploymentId", "answeredAt");

-- CreateIndex
CREATE INDEX "ColdStart_answeredAt_idx" ON "ColdStart"("answeredAt");
