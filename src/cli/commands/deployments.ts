import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import { CliError } from "../errors.ts";
import { formatTime, info, printJson, printTable } from "../output.ts";
import {
  allPages,
  type Connection,
  DEPLOYMENT_SELECTION,
  type DeploymentNode,
  deploymentObject,
  resolveModel,
} from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

const DEPLOYMENTS = `
  query Deployments($id: ID!, $first: Int, $after: String, $includeDeleted: Boolean) {
    model(id: $id) {
      deployments(first: $first, after: $after, includeDeleted: $includeDeleted) {
        edges { node { ${DEPLOYMENT_SELECTION} } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }`;

/** `hangar deployments MODEL`: a model's deployments. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("deployments")
      .argument("<model>", "model name or ID")
      .option("--all", "include deleted deployments")
      .description("list a model's deployments: status, kind, replicas and the environment each serves")
      .addHelpText(
        "after",
        `
Examples:
  $ hangar deployments sentiment
  $ hangar deployments sentiment --json | jq -r '.[] | select(.status == "ACTIVE") | .id'`,
      ),
  ).action(
    action(async (modelRef: string, opts: GlobalOptions & { all?: boolean }) => {
      const { model, deployments } = await withApi(opts, async (api) => {
        const model = await resolveModel(api, modelRef);
        const deployments = await allPages(async (first, after) => {
          const data = await api.query<{ model: { deployments: Connection<DeploymentNode> } | null }>(
            DEPLOYMENTS,
            { id: model.id, first, after, includeDeleted: opts.all === true },
          );
          if (!data.model) throw new CliError(`model ${model.name} disappeared while listing it`);
          return data.model.deployments;
        });
        return { model, deployments };
      });
      if (opts.json) {
        printJson(deployments.map(deploymentObject));
        return;
      }
      if (deployments.length === 0) {
        info(`Model ${model.name} has no deployments.`);
        return;
      }
      printTable(
        deployments.map((d) => ({
          name: d.name,
          id: d.id,
          kind: d.kind.toLowerCase(),
          status: d.status,
          replicas: String(d.activeReplicaCount),
          environment: d.environment?.name ?? "",
          created: formatTime(d.createdAt),
        })),
        [
          { key: "name", header: "NAME" },
          { key: "id", header: "ID" },
          { key: "kind", header: "KIND" },
          { key: "status", header: "STATUS" },
          { key: "replicas", header: "REPLICAS" },
          { key: "environment", header: "ENVIRONMENT" },
          { key: "created", header: "CREATED" },
        ],
      );
    }),
  );
}
