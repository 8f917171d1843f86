import { gql } from "./client.ts";
import type { TestHangar } from "./hangar.ts";
import { fail, waitFor } from "./wait.ts";

/** Promotion fields the canary tests read. */
export const PROMOTION_FIELDS =
  "id status canaryStage canaryStages percentTrafficToNewVersion errorMessage deployment { id } previousDeployment { id }";

const TERMINAL = ["SUCCEEDED", "FAILED", "CANCELED"];

export async function createEnvironment(
  hangar: TestHangar,
  input: { modelId: string; name: string; promotionSettings?: unknown; autoscalingSettings?: unknown },
): Promise<string> {
  const result = await gql(
    hangar,
    `mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) { ... on Environment { id } ... on UserError { code message } } }`,
    { input },
  );
  const id = result.createEnvironment.id as string | undefined;
  if (!id) throw new Error(`createEnvironment: ${JSON.stringify(result.createEnvironment)}`);
  return id;
}

export async function promoteTo(hangar: TestHangar, deploymentId: string, environment = "production") {
  const result = await gql(
    hangar,
    `mutation($id: ID!, $env: String!) { promote(input: { deploymentId: $id, environment: $env }) { ... on Promotion { ${PROMOTION_FIELDS} } ... on UserError { code message } } }`,
    { id: deploymentId, env: environment },
  );
  if (!result.promote.id) throw new Error(`promote: ${JSON.stringify(result.promote)}`);
  return result.promote;
}

export async function promotionOf(hangar: TestHangar, id: string, fields = PROMOTION_FIELDS) {
  return (await gql(hangar, `query($id: ID!) { promotion(id: $id) { ${fields} } }`, { id })).promotion;
}

/** Waits for the promotion to end and returns it as it ended (with `fields`, which must include status). */
export function finished(hangar: TestHangar, id: string, opts: { fields?: string; timeoutMs?: number } = {}) {
  return waitFor(
    async () => {
      const promotion = await promotionOf(hangar, id, opts.fields);
      return TERMINAL.includes(promotion.status) ? promotion : null;
    },
    { what: `promotion ${id} to end`, timeoutMs: opts.timeoutMs ?? 60_000 },
  );
}

/**
 * Waits for the promotion's status (SUCCEEDED, RAMPING_UP, ...) and returns it (PROMOTION_FIELDS); gives
 * up at once when it has ended otherwise.
 */
export function waitForPromotion(
  hangar: TestHangar,
  id: string,
  status: string,
  opts: { timeoutMs?: number } = {},
) {
  return waitFor(
    async () => {
      const promotion = await promotionOf(hangar, id);
      if (promotion.status === status) return promotion;
      if (TERMINAL.includes(promotion.status)) {
        fail(`promotion ${id} ended ${promotion.status}: ${promotion.errorMessage}`);
      }
      return null;
    },
    { what: `promotion ${id} to be ${status}`, timeoutMs: opts.timeoutMs ?? 60_000 },
  );
}

/** Waits until the ramp has reached at least `stage`. */
export function reachedStage(hangar: TestHangar, id: string, stage: number) {
  return waitFor(
    async () => {
      const promotion = await promotionOf(hangar, id);
      if (TERMINAL.includes(promotion.status)) {
        fail(`promotion ended (${promotion.status}: ${promotion.errorMessage}) before stage ${stage}`);
      }
      return (promotion.canaryStage ?? 0) >= stage ? promotion : null;
    },
    { what: `canary stage ${stage}`, timeoutMs: 60_000 },
  );
}

/** Runs one of the environment-scoped control mutations and returns the promotion (or the error). */
export async function control(
  hangar: TestHangar,
  mutation: "cancelPromotion" | "cancelCanary" | "pausePromotion" | "resumePromotion" | "forceRollForward",
  environmentId: string,
  extraArgs = "",
) {
  const result = await gql(
    hangar,
    `mutation($id: ID!) { ${mutation}(environmentId: $id${extraArgs}) { __typename ... on Promotion { ${PROMOTION_FIELDS} } ... on Error { code message } } }`,
    { id: environmentId },
  );
  return result[mutation];
}
