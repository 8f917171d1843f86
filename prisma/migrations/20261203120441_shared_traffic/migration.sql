-- CreateTable: UNLOGGED, as figures that are minutes old at most need no crash safety and cost no WAL.
CREATE UNLOGGED TABLE "TrafficSecond" (
    "memberId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "second" BIGINT NOT NULL,
    "answered" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "busyMs" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "inFlight" INTEGER NOT NULL DEFAULT 0,
    "writtenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "TrafficSecond_pkey" PRIMARY KEY ("memberId","deploymentId","second")
);

-- CreateIndex
CREATE INDEX "TrafficSecond_deploymentId_second_idx" ON "TrafficSecond"("deploymentId", "second");

-- CreateIndex
CREATE INDEX "TrafficSecond_second_idx" ON "TrafficSecond"("second");
