-- CreateEnum
CREATE TYPE "DeploymentKind" AS ENUM ('DEVELOPMENT', 'PUBLISHED');

-- CreateEnum
CREATE TYPE "DeploymentStatus" AS ENUM ('BUILDING', 'DEPLOYING', 'LOADING_MODEL', 'ACTIVE', 'UPDATING', 'SCALED_TO_ZERO', 'WAKING_UP', 'DEACTIVATING', 'INACTIVE', 'BUILD_FAILED', 'DEPLOY_FAILED', 'UNHEALTHY', 'FAILED', 'DELETED');

-- CreateEnum
CREATE TYPE "ReplicaState" AS ENUM ('STARTING', 'READY', 'STOPPING', 'STOPPED', 'FAILED');

-- CreateEnum
CREATE TYPE "ModelEventType" AS ENUM ('MODEL_CREATED', 'MODEL_DELETED', 'DEPLOYMENT_CREATED', 'DEPLOYMENT_STATUS_CHANGED', 'DEPLOYMENT_DELETED', 'ENVIRONMENT_CREATED', 'ENVIRONMENT_UPDATED', 'ENVIRONMENT_DELETED', 'PROMOTION_STARTED', 'PROMOTION_STEP_CHANGED', 'CANARY_STAGE_CHANGED', 'PROMOTION_FINISHED', 'AUTOSCALING_UPDATED');

-- CreateTable
CREATE TABLE "Model" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "liveName" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" TIMESTAMPTZ(3),
    "eventSeq" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "Model_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Environment" (
    "id" TEXT NOT NULL,
    "modelId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "liveName" TEXT,
    "isProduction" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" TIMESTAMPTZ(3),
    "currentDeploymentId" TEXT,
    "autoscaling" JSONB NOT NULL,

    CONSTRAINT "Environment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Deployment" (
    "id" TEXT NOT NULL,
    "modelId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "liveName" TEXT,
    "kind" "DeploymentKind" NOT NULL,
    "status" "DeploymentStatus" NOT NULL DEFAULT 'BUILDING',
    "artifactHash" TEXT NOT NULL,
    "environmentName" TEXT,
    "autoscaling" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" TIMESTAMPTZ(3),
    "leaseOwner" TEXT,
    "leaseExpiresAt" TIMESTAMPTZ(3),

    CONSTRAINT "Deployment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Replica" (
    "id" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "owner" TEXT NOT NULL,
    "pid" INTEGER,
    "port" INTEGER,
    "state" "ReplicaState" NOT NULL DEFAULT 'STARTING',
    "startedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "readyAt" TIMESTAMPTZ(3),
    "stoppedAt" TIMESTAMPTZ(3),
    "exitReason" TEXT,

    CONSTRAINT "Replica_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "LogLine" (
    "id" BIGSERIAL NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "replica" TEXT,
    "stream" TEXT NOT NULL,
    "line" TEXT NOT NULL,

    CONSTRAINT "LogLine_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ModelEvent" (
    "id" TEXT NOT NULL,
    "modelId" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "type" "ModelEventType" NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "message" TEXT,
    "deploymentStatus" "DeploymentStatus",
    "deploymentId" TEXT,
    "environmentId" TEXT,

    CONSTRAINT "ModelEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Model_liveName_key" ON "Model"("liveName");

-- CreateIndex
CREATE UNIQUE INDEX "Environment_modelId_liveName_key" ON "Environment"("modelId", "liveName");

-- CreateIndex
CREATE INDEX "Deployment_modelId_createdAt_idx" ON "Deployment"("modelId", "createdAt");

-- CreateIndex
CREATE INDEX "Deployment_status_idx" ON "Deployment"("status");

-- CreateIndex
CREATE UNIQUE INDEX "Deployment_modelId_liveName_key" ON "Deployment"("modelId", "liveName");

-- CreateIndex
CREATE INDEX "Replica_deploymentId_state_idx" ON "Replica"("deploymentId", "state");

-- CreateIndex
CREATE INDEX "Replica_startedAt_idx" ON "Replica"("startedAt");

-- CreateIndex
CREATE INDEX "LogLine_deploymentId_id_idx" ON "LogLine"("deploymentId", "id");

-- CreateIndex
CREATE UNIQUE INDEX "ModelEvent_modelId_seq_key" ON "ModelEvent"("modelId", "seq");

-- AddForeignKey
ALTER TABLE "Environment" ADD CONSTRAINT "Environment_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES "Model"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Environment" ADD CONSTRAINT "Environment_currentDeploymentId_fkey" FOREIGN KEY ("currentDeploymentId") REFERENCES "Deployment"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES "Model"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Replica" ADD CONSTRAINT "Replica_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "LogLine" ADD CONSTRAINT "LogLine_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ModelEvent" ADD CONSTRAINT "ModelEvent_modelId_fkey" FOREIGN KEY ("modelId") REFERENCES "Model"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ModelEvent" ADD CONSTRAINT "ModelEvent_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ModelEvent" ADD CONSTRAINT "ModelEvent_environmentId_fkey" FOREIGN KEY ("environmentId") REFERENCES "Environment"("id") ON DELETE SET NULL ON UPDATE CASCADE;
