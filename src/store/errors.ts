/** Whether a Prisma error carries `code`. */
function hasPrismaCode(error: unknown, code: string): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    (error as { code?: unknown }).code === code
  );
}

/** True for PostgreSQL unique violations as Prisma reports them. */
export function isUniqueViolation(error: unknown): boolean {
  return hasPrismaCode(error, "P2002");
}

/**
 * True when PostgreSQL aborted the transaction for a deadlock or a serialization failure
 * (Prisma's P2034): the transaction did nothing and may be run again.
 */
export function isWriteConflict(error: unknown): boolean {
  return hasPrismaCode(error, "P2034");
}
