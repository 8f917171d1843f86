import path from "node:path";
import { defineConfig } from "prisma/config";

// Prisma's CLI insists on a native schema engine it would download; `generate`
// never runs it, so any existing file satisfies the check (see README, "Database").
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= path.resolve("prisma/schema.prisma");

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://localhost/hangar" },
});
