import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import type { HangarApi } from "../api.ts";
import { unwrap } from "../api.ts";
import { action, withApi, withGlobals } from "../command.ts";
import { CliError, UsageError } from "../errors.ts";
import { printJson, printLine } from "../output.ts";
import { DEPLOYMENT_SELECTION, type DeploymentNode, deploymentObject } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

type Result = { __typename: string } & Record<string, unknown>;

const CONTROLS = {
  activate: {
    mutation: "activateDeployment",
    description: "start a deactivated (or failed) deployment again",
    done: "activated",
    help: `
Activating brings back a deactivated deployment with its settings (and retries one that failed to
start); it starts one replica, then the autoscaler takes over.

Example:
  $ hangar activate dep_3kTq9x`,
  },
  deactivate: {
    mutation: "deactivateDeployment",
    description: "stop a deployment's replicas; its paths answer 404 deployment_inactive until activated",
    done: "deactivated",
    help: `
In-flight requests finish first. The deployment keeps its place and settings; \`hangar activate\`
brings it back.

Example:
  $ hangar deactivate dep_3kTq9x`,
  },
  delete: {
    mutation: "deleteDeployment",
    description: "delete a deployment for good (asks first unless --yes)",
    done: "deleted",
    help: `
Deleting is permanent: the deployment stops and leaves listings (\`hangar deployments MODEL --all\`
still shows it), and its paths answer 404. A deployment serving production, or taking part in a
promotion, cannot be deleted (promote another one first).

Without a terminal to ask on (scripts, CI), --yes is required.

Examples:
  $ hangar delete dep_3kTq9x
  $ hangar delete dep_3kTq9x --yes --json`,
  },
} as const;

async function describeDeployment(api: HangarApi, id: string): Promise<DeploymentNode> {
  const data = await api.query<{ deployment: DeploymentNode | null }>(
    `query Deployment($id: ID!) { deployment(id: $id) { ${DEPLOYMENT_SELECTION} } }`,
    { id },
  );
  if (!data.deployment || data.deployment.status === "DELETED") {
    throw new CliError(`no deployment with ID '${id}' (\`hangar deployments MODEL\` lists them)`);
  }
  return data.deployment;
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** `hangar activate|deactivate|delete DEPLOYMENT`. */
export function register(program: Command): void {
  for (const [name, control] of Object.entries(CONTROLS)) {
    const cmd = withGlobals(
      program
        .command(name)
        .argument("<deployment>", "deployment ID (`hangar deployments MODEL` lists them)")
        .description(control.description)
        .addHelpText("after", control.help),
    );
    if (name === "delete") cmd.option("-y, --yes", "do not ask for confirmation");
    cmd.action(
      action(async (id: string, opts: GlobalOptions & { yes?: boolean }) => {
        const deployment = await withApi(opts, async (api) => {
          if (name === "delete" && !opts.yes) {
            if (!process.stdin.isTTY) {
              throw new UsageError(`refusing to delete ${id} without confirmation: pass --yes`);
            }
            const target = await describeDeployment(api, id);
            const where = target.environment ? `, serving ${target.environment.name},` : "";
            const ok = await confirm(
              `Delete deployment ${target.name} (${target.id}) of model ${target.model.name}${where} for good?`,
            );
            if (!ok) throw new CliError("not deleted");
          }
          const data = await api.query<Record<string, Result>>(
            `mutation Control($id: ID!) {
              result: ${control.mutation}(id: $id) {
                __typename
                ... on Deployment { ${DEPLOYMENT_SELECTION} }
                ... on Error { code message }
              }
            }`,
            { id },
          );
          return unwrap<DeploymentNode>(data.result!, "Deployment");
        });
        if (opts.json) printJson(deploymentObject(deployment));
        else {
          printLine(
            `Deployment ${deployment.name} (${deployment.id}) of ${deployment.model.name} ${control.done}: ` +
              `status ${deployment.status}`,
          );
        }
      }),
    );
  }
}
