/**
 * Live progress of deployments and promotions, on stderr (stdout stays for results and --json).
 *
 * On a terminal a frame is redrawn in place (log-update) with a spinner and elapsed times, and lasting
 * lines scroll above it. Elsewhere (a pipe, a file, CI) each change is one plain line, and nothing is
 * redrawn. The texts are pure functions of the snapshots the subscriptions deliver, so they are
 * unit-tested without a terminal.
 */
import { createLogUpdate } from "log-update";
import pc from "picocolors";

export interface DeploymentSnapshot {
  id: string;
  name: string;
  kind: string;
  status: string;
  activeReplicaCount?: number;
  predictUrl?: string;
  model: { id: string; name: string };
}

export interface StepSnapshot {
  name: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  message: string | null;
}

export interface PromotionSnapshot {
  id: string;
  status: string;
  steps: StepSnapshot[];
  percentTrafficToNewVersion: number;
  canaryStage: number | null;
  canaryStages: number | null;
  errorMessage: string | null;
  createdAt: string;
  finishedAt: string | null;
  environment: { id: string; name: string; predictUrl?: string; model: { id: string; name: string } };
  sourceDeployment: { id: string; name: string };
  deployment: { id: string; name: string } | null;
  previousDeployment: { id: string; name: string } | null;
}

// ---------------------------------------------------------------------------------------------------
// Where the text goes

/** Lasting lines plus, on a terminal, one live frame redrawn below them. */
export interface Reporter {
  /** A lasting line (on a terminal, above the live frame). */
  line(text: string): void;
  /** The live frame, redrawn with a fresh spinner frame; null removes it. Ignored off a terminal. */
  live(render: ((spinner: string) => string) | null): void;
  /** Stops redrawing and clears the frame (e.g. while asking a question); resume() brings it back. */
  pause(): void;
  resume(): void;
  /** Leaves the last frame on screen and stops. */
  close(): void;
  readonly interactive: boolean;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** A reporter on `stream`: live frames when it is a terminal (and `plain` is not forced), else lines. */
export function createReporter(opts: { stream?: NodeJS.WriteStream; plain?: boolean } = {}): Reporter {
  const stream = opts.stream ?? process.stderr;
  // A terminal without a size (some pseudo-terminals) cannot be redrawn in place: plain lines there.
  if (opts.plain || !stream.isTTY || !stream.columns) return plainReporter(stream);
  const update = createLogUpdate(stream);
  let render: ((spinner: string) => string) | null = null;
  let frame = 0;
  let timer: NodeJS.Timeout | null = null;
  let paused = false;
  const draw = () => {
    if (paused) return;
    if (render) update(render(pc.cyan(SPINNER[frame++ % SPINNER.length] as string)));
    else update.clear();
  };
  const start = () => {
    if (timer === null) {
      timer = setInterval(draw, 80);
      timer.unref();
    }
  };
  const stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  return {
    interactive: true,
    line: (text) => {
      if (paused) stream.write(`${text}\n`);
      else update.persist(text);
    },
    live: (next) => {
      render = next;
      if (next) start();
      else stop();
      draw();
    },
    pause: () => {
      update.clear();
      paused = true;
    },
    resume: () => {
      paused = false;
      draw();
    },
    close: () => {
      stop();
      if (!paused) draw();
      update.done();
      render = null;
    },
  };
}

function plainReporter(stream: NodeJS.WritableStream): Reporter {
  return {
    interactive: false,
    line: (text) => stream.write(`${text}\n`),
    live: () => {},
    pause: () => {},
    resume: () => {},
    close: () => {},
  };
}

// ---------------------------------------------------------------------------------------------------
// Deployments

/** What each status means, for people. */
const STATUS_TEXT: Record<string, string> = {
  BUILDING: "building (checking the folder, reading hangar.json)",
  DEPLOYING: "deploying (starting a replica)",
  LOADING_MODEL: "loading the model",
  ACTIVE: "ready",
  UPDATING: "updating",
  SCALED_TO_ZERO: "ready (scaled to zero; the next request starts it)",
  WAKING_UP: "waking up",
  DEACTIVATING: "deactivating",
  INACTIVE: "inactive",
  BUILD_FAILED: "build failed",
  DEPLOY_FAILED: "deploy failed",
  UNHEALTHY: "unhealthy (its replicas keep crashing)",
  FAILED: "failed",
  DELETED: "deleted",
};

/** A deployment is ready when it serves (or served and scaled to zero: still active, no error). */
export const READY_STATUSES: ReadonlySet<string> = new Set(["ACTIVE", "SCALED_TO_ZERO"]);
/** Statuses a deployment being brought up does not come back from by itself. */
export const FAILED_STATUSES: ReadonlySet<string> = new Set([
  "BUILD_FAILED",
  "DEPLOY_FAILED",
  "UNHEALTHY",
  "FAILED",
  "DEACTIVATING",
  "INACTIVE",
  "DELETED",
]);

export function describeStatus(status: string): string {
  return STATUS_TEXT[status] ?? status.toLowerCase();
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

function mark(status: string): string {
  if (READY_STATUSES.has(status) || status === "SUCCEEDED") return pc.green("✔");
  if (FAILED_STATUSES.has(status) || status === "FAILED" || status === "CANCELED") return pc.red("✖");
  if (status === "SKIPPED") return pc.dim("–");
  return pc.dim("·");
}

/**
 * Follows one deployment's statuses on a reporter: a line per status (plain), or a spinner frame with
 * the current status and lasting lines for the ones it went through (terminal).
 */
export class DeploymentProgress {
  private last: DeploymentSnapshot | null = null;
  private since = Date.now();

  constructor(
    private readonly reporter: Reporter,
    private readonly now: () => number = Date.now,
  ) {}

  update(deployment: DeploymentSnapshot): void {
    const previous = this.last;
    this.last = deployment;
    if (previous?.status === deployment.status) return;
    const at = this.now();
    if (this.reporter.interactive) {
      if (previous) {
        this.reporter.line(`${pc.green("✔")} ${previous.status} ${pc.dim(seconds(at - this.since))}`);
      } else {
        this.reporter.line(`Deployment ${pc.bold(deployment.name)} ${pc.dim(`(${deployment.id})`)}`);
      }
      this.since = at;
      const done = READY_STATUSES.has(deployment.status) || FAILED_STATUSES.has(deployment.status);
      if (done) {
        this.reporter.live(null);
        this.reporter.line(
          `${mark(deployment.status)} ${deployment.status} ${pc.dim(describeStatus(deployment.status))}`,
        );
      } else {
        const current = deployment.status;
        this.reporter.live(
          (spinner) =>
            `${spinner} ${current} ${pc.dim(`${describeStatus(current)}, ${seconds(this.now() - this.since)}`)}`,
        );
      }
    } else {
      const elapsed = previous ? ` (after ${seconds(at - this.since)})` : "";
      this.since = at;
      this.reporter.line(
        `deployment ${deployment.name} (${deployment.id}): ${deployment.status}: ${describeStatus(deployment.status)}${elapsed}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Promotions

export const TERMINAL_PROMOTION_STATUSES: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELED"]);

const PROMOTION_TEXT: Record<string, string> = {
  RELEASING: "releasing",
  RAMPING_UP: "ramping up (canary)",
  PAUSED: "paused",
  RAMPING_DOWN: "ramping down",
  SUCCEEDED: "succeeded",
  FAILED: "failed",
  CANCELED: "canceled",
};

function promotionTitle(p: PromotionSnapshot): string {
  const what =
    p.deployment && p.deployment.id !== p.sourceDeployment.id
      ? `${p.sourceDeployment.name} (as ${p.deployment.name})`
      : p.sourceDeployment.name;
  const replacing = p.previousDeployment ? ` (replacing ${p.previousDeployment.name})` : "";
  return `promotion ${p.id}: ${what} into ${p.environment.name}${replacing}`;
}

function stepText(step: StepSnapshot): string {
  return `${step.name}: ${step.status}${step.message ? ` (${step.message})` : ""}`;
}

function stageText(p: PromotionSnapshot): string {
  return `canary stage ${p.canaryStage}/${p.canaryStages}: ${p.percentTrafficToNewVersion}% of traffic to the new version`;
}

/**
 * The plain lines that tell what changed from `previous` to `next` (everything, for the first
 * snapshot): the promotion's status, each step whose status or message changed, each canary stage.
 */
export function promotionLines(previous: PromotionSnapshot | null, next: PromotionSnapshot): string[] {
  const lines: string[] = [];
  if (!previous) lines.push(`${promotionTitle(next)}: ${next.status}`);
  else if (previous.status !== next.status) {
    lines.push(`promotion ${next.status}: ${PROMOTION_TEXT[next.status] ?? next.status.toLowerCase()}`);
  }
  for (const step of next.steps) {
    const before = previous?.steps.find((s) => s.name === step.name);
    if (!before && step.status === "PENDING") continue;
    if (before && before.status === step.status && before.message === step.message) continue;
    lines.push(`  ${stepText(step)}`);
  }
  if (
    next.canaryStage !== null &&
    next.canaryStages !== null &&
    next.canaryStage > 0 &&
    (previous?.canaryStage !== next.canaryStage ||
      previous.percentTrafficToNewVersion !== next.percentTrafficToNewVersion)
  ) {
    lines.push(`  ${stageText(next)}`);
  }
  if (
    TERMINAL_PROMOTION_STATUSES.has(next.status) &&
    next.errorMessage &&
    previous?.errorMessage !== next.errorMessage
  ) {
    lines.push(`  ${next.errorMessage}`);
  }
  return lines;
}

function bar(percent: number, width = 20): string {
  const filled = Math.round((Math.min(100, Math.max(0, percent)) / 100) * width);
  return pc.green("█".repeat(filled)) + pc.dim("░".repeat(width - filled));
}

function stepDuration(step: StepSnapshot, now: number): string {
  if (!step.startedAt) return "";
  const end = step.finishedAt ? Date.parse(step.finishedAt) : now;
  return seconds(end - Date.parse(step.startedAt));
}

/** The live frame of a promotion: title, the three steps, and the canary bar when there is a ramp. */
export function promotionFrame(p: PromotionSnapshot, spinner: string, now: number): string {
  const width = Math.max(...p.steps.map((s) => s.name.length));
  const status = PROMOTION_TEXT[p.status] ?? p.status.toLowerCase();
  const lines = [`${pc.bold(promotionTitle(p))} ${pc.dim(`— ${status}`)}`];
  for (const step of p.steps) {
    const icon = step.status === "RUNNING" ? spinner : mark(step.status);
    const detail = [step.status.toLowerCase(), stepDuration(step, now), step.message ?? ""]
      .filter(Boolean)
      .join(", ");
    lines.push(`  ${icon} ${step.name.padEnd(width)}  ${pc.dim(detail)}`);
  }
  if (p.canaryStages !== null) {
    const stage = p.canaryStage ?? 0;
    lines.push(
      `  canary ${bar(p.percentTrafficToNewVersion)} ${String(p.percentTrafficToNewVersion).padStart(3)}%  ${pc.dim(
        `stage ${stage}/${p.canaryStages}`,
      )}`,
    );
  }
  if (p.errorMessage) lines.push(`  ${pc.red(p.errorMessage)}`);
  return lines.join("\n");
}

/** Follows one promotion on a reporter: the live frame on a terminal, change lines elsewhere. */
export class PromotionProgress {
  private last: PromotionSnapshot | null = null;

  constructor(
    private readonly reporter: Reporter,
    private readonly now: () => number = Date.now,
  ) {}

  update(promotion: PromotionSnapshot): void {
    const previous = this.last;
    this.last = promotion;
    if (this.reporter.interactive) {
      if (TERMINAL_PROMOTION_STATUSES.has(promotion.status)) {
        this.reporter.live(null);
        this.reporter.line(promotionFrame(promotion, mark(promotion.status), this.now()));
      } else {
        this.reporter.live((spinner) => promotionFrame(promotion, spinner, this.now()));
      }
      return;
    }
    for (const line of promotionLines(previous, promotion)) this.reporter.line(line);
  }
}
