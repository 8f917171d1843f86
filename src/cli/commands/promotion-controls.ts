import type { Command } from "commander";
import { unwrap } from "../api.ts";
import { action, withApi, withGlobals } from "../command.ts";
import { promotionJson } from "../deploy.ts";
import { UsageError } from "../errors.ts";
import { PROMOTION_FIELDS } from "../follow.ts";
import { printJson, printLine } from "../output.ts";
import type { PromotionSnapshot } from "../progress.ts";
import { resolveEnvironment } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

interface ControlOptions extends GlobalOptions {
  model: string;
  graceful?: boolean;
  canary?: boolean;
}

const CONTROLS: Array<{ name: string; description: string; help: string }> = [
  {
    name: "cancel",
    description: "cancel the environment's promotion: all traffic back to the previous deployment",
    help: `
Without flags all traffic returns to the previous deployment at once (cancelPromotion). --graceful
steps a ramping canary back down stage by stage first (RAMPING_DOWN), then ends CANCELED. --canary
cancels only a promotion that is ramping (else it fails with INVALID_STATE). Once ACTIVATE has begun a
promotion can no longer be cancelled.

Examples:
  $ hangar cancel production --model sentiment
  $ hangar cancel staging --model sentiment --graceful`,
  },
  {
    name: "pause",
    description: "hold the environment's promotion where it is (the traffic split stays)",
    help: `
Example:
  $ hangar pause production --model sentiment`,
  },
  {
    name: "resume",
    description: "continue a paused promotion from the same stage, with the time that stage had left",
    help: `
Example:
  $ hangar resume production --model sentiment`,
  },
  {
    name: "roll-forward",
    description: "skip the rest of the ramp: all traffic moves as soon as the new deployment is ready",
    help: `
Example:
  $ hangar roll-forward production --model sentiment`,
  },
];

function mutationFor(name: string, opts: ControlOptions): { field: string; graceful?: boolean } {
  if (name === "cancel") {
    if (opts.canary && opts.graceful) throw new UsageError("choose --canary or --graceful, not both");
    if (opts.canary) return { field: "cancelCanary" };
    return { field: "cancelPromotion", graceful: opts.graceful === true };
  }
  return { field: { pause: "pausePromotion", resume: "resumePromotion" }[name] ?? "forceRollForward" };
}

function describe(p: PromotionSnapshot): string[] {
  const stage = p.canaryStages ? `, canary stage ${p.canaryStage ?? 0}/${p.canaryStages}` : "";
  const lines = [
    `Promotion ${p.id} of ${p.sourceDeployment.name} into ${p.environment.name} (model ${p.environment.model.name}): ` +
      `${p.status}, ${p.percentTrafficToNewVersion}% of traffic on the new deployment${stage}`,
  ];
  for (const step of p.steps) {
    lines.push(`  ${step.name.padEnd(17)} ${step.status}${step.message ? `  ${step.message}` : ""}`);
  }
  if (p.errorMessage) lines.push(`  ${p.errorMessage}`);
  return lines;
}

/** `hangar cancel|pause|resume|roll-forward ENVIRONMENT --model MODEL`. */
export function register(program: Command): void {
  for (const control of CONTROLS) {
    const cmd = withGlobals(
      program
        .command(control.name)
        .argument("<environment>", "environment name (`hangar environments MODEL` lists them)")
        .requiredOption("-m, --model <model>", "model name or ID")
        .description(control.description)
        .addHelpText("after", control.help),
    );
    if (control.name === "cancel") {
      cmd
        .option("--graceful", "ramp a canary back down stage by stage instead of at once")
        .option("--canary", "cancel only if the promotion is ramping (cancelCanary)");
    }
    cmd.action(
      action(async (environmentName: string, opts: ControlOptions) => {
        const { field, graceful } = mutationFor(control.name, opts);
        const promotion = await withApi(opts, async (api) => {
          const environment = await resolveEnvironment(api, opts.model, environmentName);
          const args = graceful === undefined ? "" : ", graceful: $graceful";
          const data = await api.query<{ result: { __typename: string } & Record<string, unknown> }>(
            `mutation PromotionControl($id: ID!${graceful === undefined ? "" : ", $graceful: Boolean"}) {
              result: ${field}(environmentId: $id${args}) {
                __typename
                ... on Promotion { ${PROMOTION_FIELDS} }
                ... on Error { code message }
              }
            }`,
            { id: environment.id, ...(graceful === undefined ? {} : { graceful }) },
          );
          return unwrap<PromotionSnapshot>(data.result, "Promotion");
        });
        if (opts.json) printJson(promotionJson(promotion));
        else for (const line of describe(promotion)) printLine(line);
      }),
    );
  }
}
