/**
 * One database session (a single connection), whichever engine backs it: the
 * embedded PGlite instance or one `pg` client. Migrations and LISTEN run on
 * such a session, outside Prisma, because they need a connection of their own.
 */
export interface SqlSession {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Runs one or more statements without parameters. */
  exec(sql: string): Promise<void>;
}
