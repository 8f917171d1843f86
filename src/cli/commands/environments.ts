import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import { CliError } from "../errors.ts";
import { formatTime, printJson, printTable } from "../output.ts";
import { resolveModel } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

interface EnvironmentNode {
  id: string;
  name: string;
  isProduction: boolean;
  createdAt: string;
  predictUrl: string;
  currentDeployment: { id: string; name: string; status: string } | null;
  candidateDeployment: { id: string; name: string; status: string } | null;
  inProgressPromotion: {
    id: string;
    status: string;
    percentTrafficToNewVersion: number;
    canaryStage: number | null;
    canaryStages: number | null;
  } | null;
  promotionSettings: Record<string, unknown>;
  autoscalingSettings: Record<string, unknown>;
}

const ENVIRONMENTS = `
  query Environments($id: ID!) {
    model(id: $id) {
      environments {
        id name isProduction createdAt predictUrl
        currentDeployment { id name status }
        candidateDeployment { id name status }
        inProgressPromotion { id status percentTrafficToNewVersion canaryStage canaryStages }
        promotionSettings { redeployOnPromotion rampUpWhilePromoting rampUpDurationSeconds cleanupStrategy
          progressDeadlineSeconds errorRateThresholdPercent }
        autoscalingSettings { minReplica maxReplica autoscalingWindow scaleDownDelay concurrencyTarget
          targetUtilizationPercentage }
      }
    }
  }`;

function promotionText(e: EnvironmentNode): string {
  const p = e.inProgressPromotion;
  if (!p) return "";
  const stage = p.canaryStages ? `, stage ${p.canaryStage ?? 0}/${p.canaryStages}` : "";
  const to = e.candidateDeployment ? ` to ${e.candidateDeployment.name}` : "";
  return `${p.status} ${p.percentTrafficToNewVersion}%${to}${stage}`;
}

/** `hangar environments MODEL`: a model's environments and their promotions. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("environments")
      .argument("<model>", "model name or ID")
      .description("list a model's environments: what serves each, any promotion in progress, their URLs")
      .addHelpText(
        "after",
        `
The PROMOTION column shows an in-progress promotion's status and the share of traffic on the new
deployment; \`hangar cancel|pause|resume|roll-forward ENVIRONMENT --model MODEL\` control it.

Examples:
  $ hangar environments sentiment
  $ hangar environments sentiment --json | jq '.[] | {name, currentDeployment}'`,
      ),
  ).action(
    action(async (modelRef: string, opts: GlobalOptions) => {
      const { environments } = await withApi(opts, async (api) => {
        const model = await resolveModel(api, modelRef);
        const data = await api.query<{ model: { environments: EnvironmentNode[] } | null }>(ENVIRONMENTS, {
          id: model.id,
        });
        if (!data.model) throw new CliError(`model ${model.name} disappeared while listing it`);
        return { model, environments: data.model.environments };
      });
      if (opts.json) {
        printJson(environments);
        return;
      }
      printTable(
        environments.map((e) => ({
          name: e.name,
          id: e.id,
          current: e.currentDeployment ? `${e.currentDeployment.name} (${e.currentDeployment.status})` : "",
          promotion: promotionText(e),
          url: e.predictUrl,
          created: formatTime(e.createdAt),
        })),
        [
          { key: "name", header: "NAME" },
          { key: "id", header: "ID" },
          { key: "current", header: "CURRENT DEPLOYMENT" },
          { key: "promotion", header: "PROMOTION" },
          { key: "url", header: "URL" },
          { key: "created", header: "CREATED" },
        ],
      );
    }),
  );
}
