import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import {
  checkName,
  parseTimeout,
  promotionFailure,
  promotionJson,
  startPromotion,
  watchPromotion,
} from "../deploy.ts";
import { deadlineAfter } from "../follow.ts";
import { printJson } from "../output.ts";
import { createReporter, type PromotionSnapshot } from "../progress.ts";
import type { GlobalOptions } from "../target.ts";

interface PromoteOptions extends GlobalOptions {
  environment: string;
  wait: boolean;
  timeout?: string;
}

function summary(p: PromotionSnapshot): string {
  const into = `${p.environment.name} of model ${p.environment.model.name}`;
  if (p.status === "SUCCEEDED") {
    return `Promotion ${p.id} SUCCEEDED: ${p.deployment?.name ?? p.sourceDeployment.name} now serves ${into}\n  predict: ${p.environment.predictUrl}`;
  }
  return `Promotion ${p.id} of ${p.sourceDeployment.name} into ${into}: ${p.status}`;
}

/** `hangar promote DEPLOYMENT`: start a promotion and follow its steps and canary stages to the end. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("promote")
      .description("promote a deployment into an environment and follow it to the end")
      .argument("<deployment>", "ID of the deployment to promote (dep_...)")
      .option("--environment <name>", "environment to promote into", "production")
      .option("--no-wait", "print the promotion as soon as it has started, without following it")
      .option(
        "--timeout <seconds>",
        "fail (exit 1) when the promotion has not ended within this many seconds",
      )
      .addHelpText(
        "after",
        `
Shows the three steps (CREATE_DEPLOYMENT, START_DEPLOYMENT, ACTIVATE) and, with ramp-up, each canary
stage, live. Exit 0 only when the promotion SUCCEEDED (1 when it FAILED or was CANCELED).

Ctrl-C: on a terminal, asks whether to cancel the promotion, stop watching (it goes on), or keep
watching. Without a terminal (a pipe, CI), Ctrl-C just stops watching: the promotion goes on, nothing is
changed, and the exit code is 1 (it has not succeeded yet).

Examples:
  $ hangar promote dep_abc123
  $ hangar promote dep_abc123 --environment staging --json`,
      ),
  ).action(
    action(async (deploymentId: string, opts: PromoteOptions) => {
      checkName("environment", opts.environment, "--environment");
      const deadline = deadlineAfter(parseTimeout(opts.timeout));
      const reporter = createReporter({ plain: opts.json });
      await withApi(opts, async (api) => {
        let promotion = await startPromotion(api, deploymentId, opts.environment);
        if (opts.wait) promotion = await watchPromotion(api, promotion, reporter, deadline);
        reporter.close();
        if (opts.json) printJson(promotionJson(promotion));
        else console.log(summary(promotion));
        const failure = opts.wait ? promotionFailure(promotion) : null;
        if (failure) throw failure;
      });
    }),
  );
}
