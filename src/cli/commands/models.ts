import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import { formatTime, info, printJson, printTable } from "../output.ts";
import { allPages, type Connection } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

interface ModelNode {
  id: string;
  name: string;
  createdAt: string;
  predictUrl: string;
  productionEnvironment: { currentDeployment: { id: string; name: string; status: string } | null };
  developmentDeployment: { id: string; status: string } | null;
  environments: Array<{ name: string }>;
}

const MODELS = `
  query Models($first: Int, $after: String) {
    models(first: $first, after: $after) {
      edges { node {
        id name createdAt predictUrl
        productionEnvironment { currentDeployment { id name status } }
        developmentDeployment { id status }
        environments { name }
      } }
      pageInfo { hasNextPage endCursor }
    }
  }`;

/** `hangar models`: every live model. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("models")
      .description("list the models, with what serves production and their environments")
      .addHelpText(
        "after",
        `
Examples:
  $ hangar models
  $ hangar models --json | jq -r '.[].name'`,
      ),
  ).action(
    action(async (opts: GlobalOptions) => {
      const models = await withApi(opts, (api) =>
        allPages(
          async (first, after) =>
            (await api.query<{ models: Connection<ModelNode> }>(MODELS, { first, after })).models,
        ),
      );
      if (opts.json) {
        printJson(
          models.map((m) => ({
            id: m.id,
            name: m.name,
            createdAt: m.createdAt,
            predictUrl: m.predictUrl,
            productionDeploymentId: m.productionEnvironment.currentDeployment?.id ?? null,
            developmentDeploymentId: m.developmentDeployment?.id ?? null,
            environments: m.environments.map((e) => e.name),
          })),
        );
        return;
      }
      if (models.length === 0) {
        info("No models yet: `hangar push DIR` creates one.");
        return;
      }
      printTable(
        models.map((m) => {
          const production = m.productionEnvironment.currentDeployment;
          return {
            name: m.name,
            id: m.id,
            production: production ? `${production.name} (${production.status})` : "",
            development: m.developmentDeployment?.status ?? "",
            environments: m.environments.map((e) => e.name).join(","),
            created: formatTime(m.createdAt),
          };
        }),
        [
          { key: "name", header: "NAME" },
          { key: "id", header: "ID" },
          { key: "production", header: "PRODUCTION" },
          { key: "development", header: "DEVELOPMENT" },
          { key: "environments", header: "ENVIRONMENTS" },
          { key: "created", header: "CREATED" },
        ],
      );
    }),
  );
}
