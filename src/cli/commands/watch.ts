import path from "node:path";
import type { Command } from "commander";
import type { Ignore } from "ignore";
import { type HangarApi, unwrap } from "../api.ts";
import { action, withApi, withGlobals } from "../command.ts";
import { SerialDebouncer } from "../debounce.ts";
import { modelDirectory, modelNameFor, packWithReport, uploadPush, waitUntilReady } from "../deploy.ts";
import { DEPLOYMENT_FIELDS, onInterrupt } from "../follow.ts";
import { printJsonLine } from "../output.ts";
import { IGNORE_FILE, ignoreRules, isIgnored, packFolder } from "../pack.ts";
import { createReporter, type DeploymentSnapshot, FAILED_STATUSES, type Reporter } from "../progress.ts";
import type { GlobalOptions } from "../target.ts";

/** Quiet time after the last change before a patch is sent. */
export const DEBOUNCE_MS = 300;

const PATCH = `mutation Patch($input: PatchDevelopmentInput!) {
  patchDevelopmentDeployment(input: $input) {
    __typename
    ... on PatchDevelopment { applied needsFullDeploy error deployment { id name status } }
    ... on Error { code message }
    ... on UserError { field }
  }
}`;

interface PatchResult {
  applied: boolean;
  needsFullDeploy: boolean;
  error: string | null;
  deployment: { id: string; name: string; status: string };
}

/** What one patch did, for people. */
export function describePatch(result: PatchResult): string {
  if (result.error) return `new code failed to load; the old code keeps serving: ${result.error}`;
  if (result.needsFullDeploy) {
    return "needs a full deploy (hangar.json's server, env or resources, dependencies, or a model served by its own command changed); nothing was changed: run `hangar push --development`";
  }
  if (result.applied) return `applied in place (${result.deployment.name}, ${result.deployment.status})`;
  return "no change";
}

function clock(): string {
  return new Date().toTimeString().slice(0, 8);
}

export interface WatchTarget {
  dir: string;
  modelName: string;
  modelId: string;
  json: boolean;
  /** Send the folder once at the start (the deployment may run older code than the folder has). */
  sync: boolean;
}

/**
 * Watches the folder and sends a patch (a full pack; the server decides what changed) after each
 * burst of changes, one at a time, until Ctrl-C.
 */
export async function watchFolder(api: HangarApi, target: WatchTarget): Promise<void> {
  let rules: Ignore = await ignoreRules(target.dir);
  const sendPatch = async () => {
    const packed = await packFolder(target.dir);
    const data = await api.upload<{
      patchDevelopmentDeployment: { __typename: string } & Record<string, unknown>;
    }>(
      PATCH,
      { input: { modelId: target.modelId } },
      { variable: "input.source", data: packed.archive, filename: "model.tar.gz" },
    );
    const result = unwrap<PatchResult>(data.patchDevelopmentDeployment, "PatchDevelopment");
    if (target.json) {
      printJsonLine({
        at: new Date().toISOString(),
        applied: result.applied,
        needsFullDeploy: result.needsFullDeploy,
        error: result.error,
        deploymentId: result.deployment.id,
        status: result.deployment.status,
      });
    } else {
      console.log(`${clock()} ${describePatch(result)}`);
    }
  };
  const patches = new SerialDebouncer(sendPatch, DEBOUNCE_MS, (error) => {
    process.stderr.write(
      `${clock()} patch failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
  });
  const { watch } = await import("chokidar");
  const watcher = watch(target.dir, {
    ignoreInitial: true,
    ignored: (file, stats) => {
      const relative = path.relative(target.dir, file).split(path.sep).join("/");
      if (relative === "" || relative.startsWith("..")) return false;
      return isIgnored(rules, relative, stats?.isDirectory() ?? false);
    },
  });
  watcher.on("all", (_event, file) => {
    if (path.relative(target.dir, file) === IGNORE_FILE) {
      void ignoreRules(target.dir).then((next) => {
        rules = next;
      });
    }
    patches.trigger();
  });
  watcher.on("error", (error) => {
    process.stderr.write(`watching failed: ${error instanceof Error ? error.message : String(error)}\n`);
  });
  const stopped = new Promise<void>((resolve) => {
    const dispose = onInterrupt(() => {
      dispose();
      resolve();
    });
  });
  await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
  process.stderr.write(
    `Watching ${target.dir} for model '${target.modelName}' (patches go to its development deployment); Ctrl-C to stop\n`,
  );
  if (target.sync) patches.trigger();
  await stopped;
  patches.stop();
  await watcher.close();
  process.stderr.write("Stopped watching\n");
}

/** The model's development deployment, pushing one first (as `push --development`) when there is none. */
async function developmentDeployment(
  api: HangarApi,
  dir: string,
  modelName: string,
  reporter: Reporter,
): Promise<{ deployment: DeploymentSnapshot; pushed: boolean }> {
  const data = await api.query<{
    model: { id: string; developmentDeployment: DeploymentSnapshot | null } | null;
  }>(
    `query WatchModel($name: String!) { model(name: $name) { id developmentDeployment { ${DEPLOYMENT_FIELDS} } } }`,
    { name: modelName },
  );
  const existing = data.model?.developmentDeployment;
  if (existing && !FAILED_STATUSES.has(existing.status)) return { deployment: existing, pushed: false };
  reporter.line(
    existing
      ? `The development deployment of '${modelName}' is ${existing.status}: pushing the folder again`
      : `'${modelName}' has no development deployment yet: pushing one`,
  );
  const packed = await packWithReport(dir, reporter);
  const pushed = await uploadPush(api, packed, { modelName, development: true }, reporter);
  const { deployment, failed } = await waitUntilReady(api, pushed, reporter, null);
  if (failed) throw failed;
  return { deployment, pushed: true };
}

/** `hangar watch [DIR]`: live reload of the model's development deployment. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("watch")
      .description("send every change of a model folder to its development deployment (live reload)")
      .argument("[dir]", "the model folder", ".")
      .option("--model <name>", "model to patch (default: hangar.json's name, else the folder's name)")
      .addHelpText(
        "after",
        `
Each change (after ${DEBOUNCE_MS} ms without further changes) sends the whole folder, packed as for
\`hangar push\`; the server decides what changed. Code-only changes are applied in place; changes to
hangar.json's server, env or resources, or to dependencies, need \`hangar push --development\`. Without a development
deployment, the folder is pushed as one first. Ctrl-C stops (exit 0). --json prints one object per patch.`,
      ),
  ).action(
    action(async (dirArg: string, opts: GlobalOptions & { model?: string }) => {
      const dir = await modelDirectory(dirArg);
      const modelName = await modelNameFor(dir, opts.model);
      const reporter = createReporter({ plain: opts.json });
      await withApi(opts, async (api) => {
        const { deployment, pushed } = await developmentDeployment(api, dir, modelName, reporter);
        reporter.close();
        await watchFolder(api, {
          dir,
          modelName,
          modelId: deployment.model.id,
          json: opts.json === true,
          sync: !pushed,
        });
      });
    }),
  );
}
