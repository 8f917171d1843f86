/**
 * What `hangar push`, `hangar watch` and `hangar promote` share: finding the model folder and its
 * name, packing and uploading it, following the deployment until it is ready (with the log tail when
 * it fails), starting and following a promotion (with the Ctrl-C choice on a terminal), and the JSON
 * these commands print.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { nameProblem } from "../domain/names.ts";
import { type HangarApi, unwrap } from "./api.ts";
import { CliError, UsageError } from "./errors.ts";
import {
  DEPLOYMENT_FIELDS,
  type FollowOptions,
  followDeployment,
  followPromotion,
  logTail,
  onInterrupt,
  PROMOTION_FIELDS,
} from "./follow.ts";
import { formatBytes, IGNORE_FILE, type PackedFolder, packFolder } from "./pack.ts";
import {
  DeploymentProgress,
  type DeploymentSnapshot,
  FAILED_STATUSES,
  PromotionProgress,
  type PromotionSnapshot,
  type Reporter,
} from "./progress.ts";

type Result = { __typename: string } & Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------
// The model folder

/** The folder argument, resolved; a usage error when it is missing or not a directory. */
export async function modelDirectory(dir: string | undefined): Promise<string> {
  const resolved = path.resolve(dir ?? ".");
  const info = await stat(resolved).catch(() => null);
  if (!info) throw new UsageError(`no such folder: ${dir ?? "."}`);
  if (!info.isDirectory()) throw new UsageError(`not a folder: ${dir}`);
  return resolved;
}

/**
 * The model a folder pushes to: --model, else hangar.json's `name`, else the folder's name in lower
 * case. A usage error when the name is not a valid model name or hangar.json cannot be read.
 */
export async function modelNameFor(dir: string, flag: string | undefined): Promise<string> {
  let name = flag;
  let from = "--model";
  if (name === undefined) {
    const manifest = await readFile(path.join(dir, "hangar.json"), "utf8").catch(() => null);
    if (manifest !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(manifest);
      } catch (error) {
        throw new UsageError(
          `${path.join(dir, "hangar.json")} is not valid JSON: ${(error as Error).message}`,
        );
      }
      const declared = (parsed as { name?: unknown } | null)?.name;
      if (typeof declared === "string") {
        name = declared;
        from = "hangar.json's name";
      }
    }
  }
  if (name === undefined) {
    name = path.basename(dir).toLowerCase();
    from = `the folder's name`;
  }
  const problem = nameProblem("model", name);
  if (problem) {
    const fix = from === "--model" ? "" : ": pass --model NAME (or set `name` in hangar.json)";
    throw new UsageError(`${problem} (from ${from})${fix}`);
  }
  return name;
}

/** Usage checks shared by the commands: a valid environment / deployment name, a positive timeout. */
export function checkName(kind: "environment" | "deployment", value: string | undefined, flag: string): void {
  if (value === undefined) return;
  const problem = nameProblem(kind, value);
  if (problem) throw new UsageError(`${flag}: ${problem}`);
}

export function parseTimeout(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`--timeout must be a number of seconds above 0, got '${raw}'`);
  }
  return seconds;
}

// ---------------------------------------------------------------------------------------------------
// Packing and uploading

/** Packs the folder, telling the user what went in. */
export async function packWithReport(dir: string, reporter: Reporter): Promise<PackedFolder> {
  const packed = await packFolder(dir);
  if (packed.files === 0) {
    throw new UsageError(`nothing to push: ${dir} has no files (or ${IGNORE_FILE} leaves all of them out)`);
  }
  for (const skipped of packed.skipped) reporter.line(`skipped ${skipped} (not a file, folder or link)`);
  reporter.line(
    `Packed ${packed.files} file${packed.files === 1 ? "" : "s"} (${formatBytes(packed.bytes)}) from ${dir} into ${formatBytes(
      packed.archive.byteLength,
    )}`,
  );
  return packed;
}

/** Runs `upload` with a live "Uploading ..." line (with elapsed time) on a terminal. */
export async function uploading<T>(reporter: Reporter, what: string, upload: () => Promise<T>): Promise<T> {
  const started = Date.now();
  if (reporter.interactive) {
    reporter.live(
      (spinner) => `${spinner} Uploading ${what} ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } else {
    reporter.line(`Uploading ${what}`);
  }
  try {
    const result = await upload();
    if (reporter.interactive)
      reporter.line(`Uploaded ${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return result;
  } finally {
    reporter.live(null);
  }
}

export interface PushInput {
  modelName: string;
  development: boolean;
  deploymentName?: string;
  environment?: string;
}

const PUSH = `mutation Push($input: PushDeploymentInput!) {
  pushDeployment(input: $input) { __typename ... on Deployment { ${DEPLOYMENT_FIELDS} } ... on Error { code message } ... on UserError { field } }
}`;

/** Uploads a packed folder with pushDeployment and returns the new (or replaced) deployment. */
export async function uploadPush(
  api: HangarApi,
  packed: PackedFolder,
  input: PushInput,
  reporter: Reporter,
): Promise<DeploymentSnapshot> {
  const size = formatBytes(packed.archive.byteLength);
  const what = `${size} to ${api.url} (model '${input.modelName}'${input.development ? ", development" : ""})`;
  const data = await uploading(reporter, what, () =>
    api.upload<{ pushDeployment: Result }>(
      PUSH,
      {
        input: {
          modelName: input.modelName,
          development: input.development,
          ...(input.deploymentName ? { deploymentName: input.deploymentName } : {}),
          ...(input.environment ? { environment: input.environment } : {}),
        },
      },
      { variable: "input.source", data: packed.archive, filename: "model.tar.gz" },
    ),
  );
  return unwrap<DeploymentSnapshot>(data.pushDeployment, "Deployment");
}

// ---------------------------------------------------------------------------------------------------
// Following

/** Ctrl-C stops watching (the thing watched goes on): an AbortSignal that the first SIGINT aborts. */
export function stopOnInterrupt(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const dispose = onInterrupt(() => controller.abort());
  return { signal: controller.signal, dispose };
}

/**
 * Follows a deployment until it is ready, showing its statuses. Returns the last snapshot; when it
 * failed, the log tail has been shown and `failed` is set. Ctrl-C stops watching (a CliError).
 */
export async function waitUntilReady(
  api: HangarApi,
  deployment: DeploymentSnapshot,
  reporter: Reporter,
  deadline: number | null,
): Promise<{ deployment: DeploymentSnapshot; failed: CliError | null }> {
  const progress = new DeploymentProgress(reporter);
  progress.update(deployment);
  const interrupt = stopOnInterrupt();
  let followed: Awaited<ReturnType<typeof followDeployment>>;
  try {
    followed = await followDeployment(api, deployment.id, {
      deadline,
      signal: interrupt.signal,
      onUpdate: (d) => progress.update(d),
    });
  } catch (error) {
    reporter.live(null);
    if (error instanceof CliError && error.message.startsWith("timed out")) {
      throw new CliError(
        `${error.message}; the deployment goes on (\`hangar logs ${deployment.id} -f\` shows it)`,
      );
    }
    throw error;
  } finally {
    interrupt.dispose();
  }
  reporter.live(null);
  const last = followed.last;
  if (followed.stopped) {
    throw new CliError(
      `stopped watching deployment ${last.id} (${last.status}); it goes on: \`hangar logs ${last.id} -f\` follows it`,
    );
  }
  if (!FAILED_STATUSES.has(last.status)) return { deployment: last, failed: null };
  const tail = await logTail(api, last.id).catch(() => []);
  reporter.line(
    tail.length > 0 ? `Last log lines of ${last.name} (${last.id}):\n${tail.join("\n")}` : "(no log lines)",
  );
  return {
    deployment: last,
    failed: new CliError(
      `deployment ${last.name} (${last.id}) is ${last.status}: see its logs above (\`hangar logs ${last.id}\`)`,
    ),
  };
}

const PROMOTE = `mutation Promote($input: PromoteInput!) {
  promote(input: $input) { __typename ... on Promotion { ${PROMOTION_FIELDS} } ... on Error { code message } ... on UserError { field } }
}`;

/** Starts a promotion of the deployment into the environment. */
export async function startPromotion(
  api: HangarApi,
  deploymentId: string,
  environment: string,
): Promise<PromotionSnapshot> {
  const data = await api.query<{ promote: Result }>(PROMOTE, { input: { deploymentId, environment } });
  return unwrap<PromotionSnapshot>(data.promote, "Promotion");
}

/** The promotion a push into an environment started (the newest one of the environment from it). */
export async function promotionOfPush(
  api: HangarApi,
  deployment: DeploymentSnapshot,
  environment: string,
): Promise<PromotionSnapshot> {
  const data = await api.query<{
    environment: { promotions: { edges: { node: PromotionSnapshot }[] } } | null;
  }>(
    `query PushPromotion($modelId: ID!, $name: String!) {
      environment(modelId: $modelId, name: $name) { promotions(first: 10) { edges { node { ${PROMOTION_FIELDS} } } } }
    }`,
    { modelId: deployment.model.id, name: environment },
  );
  const found = data.environment?.promotions.edges
    .map((edge) => edge.node)
    .find((p) => p.sourceDeployment.id === deployment.id);
  if (!found) throw new CliError(`the push into '${environment}' started no promotion that can be found`);
  return found;
}

const CANCEL = `mutation Cancel($id: ID!) {
  cancelPromotion(environmentId: $id) { __typename ... on Promotion { id status } ... on Error { code message } }
}`;

type InterruptChoice = "continue" | "stop" | "cancel";

/** On a terminal: what to do about Ctrl-C during a promotion. Ctrl-C again (or no answer) stops watching. */
async function askAboutInterrupt(promotion: PromotionSnapshot): Promise<InterruptChoice> {
  // Loaded here, not at start-up: every other command would pay for it.
  const { default: select } = await import("@inquirer/select");
  try {
    return await select<InterruptChoice>(
      {
        message: `Promotion into ${promotion.environment.name} is ${promotion.status}. What now?`,
        choices: [
          {
            value: "stop",
            name: "Stop watching",
            description: "the promotion goes on without this terminal",
          },
          {
            value: "cancel",
            name: "Cancel the promotion",
            description: "all traffic goes back to the previous deployment",
          },
          { value: "continue", name: "Keep watching" },
        ],
      },
      { input: process.stdin, output: process.stderr, clearPromptOnDone: true },
    );
  } catch {
    return "stop";
  }
}

/** Whether Ctrl-C may ask a question (a person at a terminal) rather than just stop watching. */
export function canAsk(reporter: Reporter): boolean {
  return reporter.interactive && process.stdin.isTTY === true;
}

/**
 * Follows a promotion to its end, showing steps and canary stages. Ctrl-C on a terminal asks whether
 * to cancel it or stop watching; elsewhere it stops watching. Returns the final snapshot, whatever
 * the outcome (see promotionFailure); stopping to watch or the deadline are CliErrors.
 */
export async function watchPromotion(
  api: HangarApi,
  promotion: PromotionSnapshot,
  reporter: Reporter,
  deadline: number | null,
): Promise<PromotionSnapshot> {
  const progress = new PromotionProgress(reporter);
  const controller = new AbortController();
  let latest = promotion;
  let asking = false;
  const dispose = onInterrupt(() => {
    if (asking) return;
    if (!canAsk(reporter)) {
      controller.abort();
      return;
    }
    asking = true;
    reporter.pause();
    void askAboutInterrupt(latest)
      .then(async (choice) => {
        reporter.resume();
        if (choice === "stop") controller.abort();
        if (choice === "cancel") {
          const data = await api.query<{ cancelPromotion: Result }>(CANCEL, { id: latest.environment.id });
          const canceled = unwrap<{ id: string; status: string }>(data.cancelPromotion, "Promotion");
          reporter.line(`Canceling promotion ${canceled.id} (${canceled.status})`);
        }
      })
      .catch((error: unknown) => {
        reporter.line(`could not cancel: ${error instanceof Error ? error.message : String(error)}`);
      })
      .finally(() => {
        asking = false;
      });
  });
  const options: FollowOptions<PromotionSnapshot> = {
    deadline,
    signal: controller.signal,
    onUpdate: (p) => {
      latest = p;
      progress.update(p);
    },
  };
  try {
    const followed = await followPromotion(api, promotion.id, options);
    if (followed.stopped) {
      const p = followed.last;
      throw new CliError(
        `stopped watching promotion ${p.id} (${p.status}); it goes on: \`hangar cancel ${p.environment.name} --model ${p.environment.model.name}\` cancels it`,
      );
    }
    return followed.last;
  } catch (error) {
    if (error instanceof CliError && error.message.startsWith("timed out")) {
      throw new CliError(`${error.message}; the promotion goes on`);
    }
    throw error;
  } finally {
    dispose();
    reporter.live(null);
  }
}

/** The error a finished promotion stands for: null when it SUCCEEDED. */
export function promotionFailure(p: PromotionSnapshot): CliError | null {
  if (p.status === "SUCCEEDED") return null;
  const reason = p.errorMessage ? `: ${p.errorMessage}` : "";
  if (p.status === "CANCELED") {
    return new CliError(`promotion ${p.id} into ${p.environment.name} was canceled${reason}`);
  }
  return new CliError(`promotion ${p.id} into ${p.environment.name} ${p.status}${reason}`);
}

// ---------------------------------------------------------------------------------------------------
// Output

export function deploymentJson(d: DeploymentSnapshot & { createdAt?: string }) {
  return {
    id: d.id,
    name: d.name,
    kind: d.kind,
    status: d.status,
    modelId: d.model.id,
    modelName: d.model.name,
    activeReplicaCount: d.activeReplicaCount,
    predictUrl: d.predictUrl,
    createdAt: d.createdAt,
  };
}

export function promotionJson(p: PromotionSnapshot) {
  return {
    id: p.id,
    status: p.status,
    environment: p.environment.name,
    environmentId: p.environment.id,
    modelId: p.environment.model.id,
    modelName: p.environment.model.name,
    sourceDeploymentId: p.sourceDeployment.id,
    deploymentId: p.deployment?.id ?? null,
    previousDeploymentId: p.previousDeployment?.id ?? null,
    percentTrafficToNewVersion: p.percentTrafficToNewVersion,
    canaryStage: p.canaryStage,
    canaryStages: p.canaryStages,
    steps: p.steps,
    errorMessage: p.errorMessage,
    predictUrl: p.environment.predictUrl,
    createdAt: p.createdAt,
    finishedAt: p.finishedAt,
  };
}

/** The gateway path of a model's development deployment, from any of its deployment URLs. */
export function developmentUrl(d: DeploymentSnapshot): string | undefined {
  return d.predictUrl?.replace(/\/deployments\/[^/]+\/predict$/, "/development/predict");
}
