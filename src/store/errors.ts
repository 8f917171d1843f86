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
 * True when PostgreSQL aborted the transaction for a deadlock or a serialization failure (Prisma's
 * P2034, or P2010 with SQLSTATE 40P01/40001 from a raw query): the transaction did nothing and may be
 * run again.
 */
export function isWriteConflict(error: unknown): boolean {
  if (hasPrismaCode(error, "P2034")) return true;
  // A raw query ($queryRaw, e.g. SELECT … FOR UPDATE) reports PostgreSQL's own code under P2010.
  if (!hasPrismaCode(error, "P2010")) return false;
  const cause = (
    error as { meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown } } } }
  ).meta?.driverAdapterError?.cause;
  return (
    cause?.kind === "TransactionWriteConflict" ||
    cause?.originalCode === "40P01" ||
    cause?.originalCode === "40001"
  );
}
