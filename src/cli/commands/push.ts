import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import {
  checkName,
  deploymentJson,
  developmentUrl,
  modelDirectory,
  modelNameFor,
  packWithReport,
  parseTimeout,
  promotionFailure,
  promotionJson,
  promotionOfPush,
  startPromotion,
  uploadPush,
  waitUntilReady,
  watchPromotion,
} from "../deploy.ts";
import { UsageError } from "../errors.ts";
import { deadlineAfter } from "../follow.ts";
import { printJson, printJsonLine } from "../output.ts";
import { createReporter, type PromotionSnapshot } from "../progress.ts";
import type { GlobalOptions } from "../target.ts";
import { watchFolder } from "./watch.ts";

interface PushOptions extends GlobalOptions {
  model?: string;
  development?: boolean;
  watch?: boolean;
  promote?: boolean;
  environment?: string;
  deploymentName?: string;
  wait: boolean;
  timeout?: string;
}

/** Flag combinations that make no sense, refused before anything is read or sent (exit 2). */
export function checkPushFlags(opts: PushOptions): void {
  if (opts.promote && opts.environment !== undefined) {
    throw new UsageError(
      "--promote and --environment cannot be combined: --promote means --environment production",
    );
  }
  if (opts.watch && (opts.promote || opts.environment !== undefined)) {
    throw new UsageError(
      "--watch cannot be combined with --promote or --environment: watching patches the development deployment",
    );
  }
  if (opts.development && (opts.promote || opts.environment !== undefined)) {
    throw new UsageError(
      "--development cannot be combined with --promote or --environment: push a published deployment to promote it, " +
        "or promote the development deployment with `hangar promote DEPLOYMENT`",
    );
  }
  if (opts.deploymentName !== undefined && (opts.development || opts.watch)) {
    throw new UsageError(
      "--deployment-name cannot be used with --development or --watch: that deployment is always 'development'",
    );
  }
  if (opts.watch && !opts.wait) throw new UsageError("--watch cannot be combined with --no-wait");
  checkName("environment", opts.environment, "--environment");
  checkName("deployment", opts.deploymentName, "--deployment-name");
  parseTimeout(opts.timeout);
}

/** `hangar push [DIR]`: pack, upload, follow until ready; optionally promote, or keep watching. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("push")
      .description("deploy a model folder and wait until it is ready")
      .argument("[dir]", "the model folder", ".")
      .option("--model <name>", "model to push to (default: hangar.json's name, else the folder's name)")
      .option("--development", "push to the model's development deployment (replaced in place)")
      .option("--watch", "push as development, then send every change of the folder as a live patch")
      .option("--promote", "publish, then promote into production")
      .option("--environment <name>", "publish and promote into this environment at once")
      .option("--deployment-name <name>", "name of the new published deployment (default deployment-N)")
      .option("--no-wait", "print the deployment as soon as it is created, without following it")
      .option("--timeout <seconds>", "fail (exit 1) when not ready (or promoted) within this many seconds")
      .addHelpText(
        "after",
        `
The folder is packed as a gzip'd tar, without what .hangarignore (gitignore syntax) lists and without
.git, .hg, .svn, .hangar, __pycache__, *.pyc and editor/OS litter; node_modules is included (Hangar installs
nothing). A deployment is ready when ACTIVE (or SCALED_TO_ZERO, which it only reaches after being ready).
Ctrl-C stops watching; the deployment (and promotion) go on.

Examples:
  $ hangar push examples/sentiment
  $ hangar push --development --watch
  $ hangar push --environment staging --timeout 600
  $ hangar push --promote --json`,
      ),
  ).action(
    action(async (dirArg: string, opts: PushOptions) => {
      checkPushFlags(opts);
      const dir = await modelDirectory(dirArg);
      const modelName = await modelNameFor(dir, opts.model);
      const deadline = deadlineAfter(parseTimeout(opts.timeout));
      const development = opts.development === true || opts.watch === true;
      const reporter = createReporter({ plain: opts.json });
      const packed = await packWithReport(dir, reporter);
      await withApi(opts, async (api) => {
        const pushed = await uploadPush(
          api,
          packed,
          { modelName, development, deploymentName: opts.deploymentName, environment: opts.environment },
          reporter,
        );
        const environment = opts.promote ? "production" : opts.environment;
        let promotion: PromotionSnapshot | null = null;
        if (!opts.wait) {
          if (opts.environment) promotion = await promotionOfPush(api, pushed, opts.environment);
          else if (opts.promote) promotion = await startPromotion(api, pushed.id, "production");
          if (opts.json)
            printJson({
              ...deploymentJson(pushed),
              ...(promotion ? { promotion: promotionJson(promotion) } : {}),
            });
          else {
            console.log(
              `Deployment ${pushed.name} (${pushed.id}) of model ${pushed.model.name}: ${pushed.status}`,
            );
            if (promotion)
              console.log(
                `Promotion ${promotion.id} into ${promotion.environment.name}: ${promotion.status}`,
              );
          }
          reporter.close();
          return;
        }
        const { deployment, failed } = await waitUntilReady(api, pushed, reporter, deadline);
        if (failed) {
          reporter.close();
          if (opts.json) printJson(deploymentJson(deployment));
          throw failed;
        }
        if (environment) {
          promotion = opts.environment
            ? await promotionOfPush(api, deployment, opts.environment)
            : await startPromotion(api, deployment.id, "production");
          promotion = await watchPromotion(api, promotion, reporter, deadline);
        }
        reporter.close();
        if (opts.json) {
          // With --watch, stdout is a stream of JSON lines: the deployment, then one object per patch.
          (opts.watch ? printJsonLine : printJson)({
            ...deploymentJson(deployment),
            ...(promotion ? { promotion: promotionJson(promotion) } : {}),
          });
        } else {
          console.log(
            `Deployment ${deployment.name} (${deployment.id}) of model ${deployment.model.name} is ${deployment.status}`,
          );
          console.log(`  predict: ${development ? developmentUrl(deployment) : deployment.predictUrl}`);
          if (promotion?.status === "SUCCEEDED") {
            console.log(`Promoted into ${promotion.environment.name}: ${promotion.environment.predictUrl}`);
          }
        }
        const failure = promotion ? promotionFailure(promotion) : null;
        if (failure) throw failure;
        if (opts.watch) {
          await watchFolder(api, {
            dir,
            modelName,
            modelId: deployment.model.id,
            json: opts.json === true,
            sync: false,
          });
        }
      });
    }),
  );
}
