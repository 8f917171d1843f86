/** Name rules of API.md section 6. */
import { UserError } from "./errors.ts";
export const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const ENVIRONMENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const DEPLOYMENT_NAME = /^[0-9A-Za-z_.-]{1,63}$/;

export const DEVELOPMENT_DEPLOYMENT_NAME = "development";
export const PRODUCTION_ENVIRONMENT_NAME = "production";

export type NameKind = "model" | "environment" | "deployment";

const RULES: Record<NameKind, { pattern: RegExp; describe: string }> = {
  model: {
    pattern: MODEL_NAME,
    describe: "1-63 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
  },
  environment: {
    pattern: ENVIRONMENT_NAME,
    describe: "1-63 characters: lower-case letters, digits or '-', starting with a letter or digit",
  },
  deployment: { pattern: DEPLOYMENT_NAME, describe: "1-63 characters: letters, digits, '.', '_' or '-'" },
};

/** Null when the name is valid, else the message a user should see. */
export function nameProblem(kind: NameKind, name: string): string | null {
  const rule = RULES[kind];
  return rule.pattern.test(name) ? null : `invalid ${kind} name '${name}': ${rule.describe}`;
}

/** Refuses a bad model name with INVALID_INPUT on `field`. */
export function checkModelName(name: string, field = "name"): void {
  const problem = nameProblem("model", name);
  if (problem) throw new UserError("INVALID_INPUT", problem, field);
}
