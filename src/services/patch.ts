import { UserError } from "../domain/errors.ts";
import { planPatch } from "../domain/patch.ts";
import { appendEvent } from "../events/log.ts";
import type { Deployment } from "../generated/prisma/client.ts";
import { modelRoot, storeUpload } from "../store/artifacts.ts";
import { compareFolders } from "../store/folder-diff.ts";
import { requireVisible } from "./authorize.ts";
import { type CodeReloader, type RequestContext, transaction } from "./context.ts";

export interface PatchResult {
  deployment: Deployment;
  applied: boolean;
  needsFullDeploy: boolean;
  error: string | null;
}

/**
 * patchDevelopmentDeployment (API.md section 6, Live reload): code-only
 * changes are loaded into the running replica in place; changes that need a
 * new process are refused with needsFullDeploy; identical code does nothing;
 * code that fails to load leaves the old code serving.
 */
export async function patchDevelopment(
  ctx: RequestContext,
  reloader: CodeReloader,
  modelId: string,
  source: ReadableStream<Uint8Array>,
): Promise<PatchResult> {
  const { prisma } = ctx.db;
  const model = await prisma.model.findFirst({
    where: { id: modelId, deletedAt: null },
    select: { id: true },
  });
  const missing = () => new UserError("NOT_FOUND", `no model with ID '${modelId}'`, "modelId");
  if (!model) throw missing();
  requireVisible(ctx, model.id, missing);
  const find = () =>
    prisma.deployment.findFirst({ where: { modelId, kind: "DEVELOPMENT", deletedAt: null } });
  const deployment = await find();
  if (!deployment) throw new UserError("NOT_FOUND", "this model has no development deployment", "modelId");
  const artifact = await storeUpload(ctx.artifacts, source);
  const unchanged = { deployment, applied: false, needsFullDeploy: false, error: null };
  if (artifact.hash === deployment.artifactHash) return unchanged;
  // Without the running code (gone from every store) there is nothing to compare with: a full deploy.
  if (!(await ctx.artifacts.ensure(deployment.artifactHash))) {
    return { deployment, applied: false, needsFullDeploy: true, error: null };
  }
  const plan = planPatch(
    await compareFolders(
      await modelRoot(ctx.artifacts.dir(deployment.artifactHash)),
      await modelRoot(artifact.dir),
    ),
  );
  if (plan.kind === "identical") return unchanged;
  if (plan.kind === "full") {
    return { deployment, applied: false, needsFullDeploy: true, error: null };
  }
  let updated = deployment;
  const outcome = await reloader.reloadCode(deployment, artifact.hash, async (how) => {
    updated = await transaction(ctx, async (tx) => {
      const row = await tx.deployment.update({
        where: { id: deployment.id },
        data: { artifactHash: artifact.hash },
      });
      await appendEvent(tx, {
        modelId,
        type: "DEPLOYMENT_PATCHED",
        deploymentId: deployment.id,
        message: `new code loaded ${how}: ${plan.reasons.join("; ")}`,
      });
      return row;
    });
  });
  if ("error" in outcome) return { deployment, applied: false, needsFullDeploy: false, error: outcome.error };
  return { deployment: updated, applied: true, needsFullDeploy: false, error: null };
}
