/**
 * Prints the GraphQL schema to schema.graphql. With --check, fails (exit 1)
 * when the committed file differs from what the code builds: CI runs that.
 */
import { readFile, writeFile } from "node:fs/promises";
import { lexicographicSortSchema, printSchema } from "graphql";
import { schema } from "../src/graphql/schema.ts";

const file = new URL("../schema.graphql", import.meta.url);
const printed = `${printSchema(lexicographicSortSchema(schema))}\n`;

if (process.argv.includes("--check")) {
  const committed = await readFile(file, "utf8").catch(() => "");
  if (committed !== printed) {
    process.stderr.write("schema.graphql is stale: run `npm run schema:print` and commit the result\n");
    process.exit(1);
  }
  process.stdout.write("schema.graphql is up to date\n");
} else {
  await writeFile(file, printed);
  process.stdout.write("wrote schema.graphql\n");
}
