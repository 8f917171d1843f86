/** The ErrorCode enum of API.md section 5. */
export const ERROR_CODES = [
  "NOT_FOUND",
  "INVALID_INPUT",
  "NAME_TAKEN",
  "RESERVED_NAME",
  "PRODUCTION_ENVIRONMENT_PROTECTED",
  "DEPLOYMENT_IN_USE",
  "DEPLOYMENT_NOT_ACTIVE",
  "PROMOTION_IN_PROGRESS",
  "NO_PROMOTION_IN_PROGRESS",
  "INVALID_STATE",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];
