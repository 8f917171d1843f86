import { stripVTControlCharacters as plain } from "node:util";
import { describe, expect, it } from "vitest";
import {
  DeploymentProgress,
  PromotionProgress,
  type PromotionSnapshot,
  promotionFrame,
  promotionLines,
  type Reporter,
} from "../../src/cli/progress.ts";

function recorder(interactive: boolean) {
  const lines: string[] = [];
  let frame: ((spinner: string) => string) | null = null;
  const reporter: Reporter = {
    interactive,
    line: (text) => lines.push(plain(text)),
    live: (render) => {
      frame = render;
    },
    pause: () => {},
    resume: () => {},
    close: () => {},
  };
  return { reporter, lines, frame: () => (frame ? plain(frame("*")) : null) };
}

const step = (name: string, status: string, message: string | null = null) => ({
  name,
  status,
  startedAt: status === "PENDING" ? null : "2030-01-01T00:00:00.000Z",
  finishedAt: ["SUCCEEDED", "FAILED", "SKIPPED"].includes(status) ? "2030-01-01T00:00:01.500Z" : null,
  message,
});

function promotion(over: Partial<PromotionSnapshot> = {}): PromotionSnapshot {
  return {
    id: "prm_1",
    status: "RELEASING",
    steps: [
      step("CREATE_DEPLOYMENT", "RUNNING"),
      step("START_DEPLOYMENT", "PENDING"),
      step("ACTIVATE", "PENDING"),
    ],
    percentTrafficToNewVersion: 0,
    canaryStage: null,
    canaryStages: null,
    errorMessage: null,
    createdAt: "2030-01-01T00:00:00.000Z",
    finishedAt: null,
    environment: { id: "env_1", name: "staging", model: { id: "mdl_1", name: "m" } },
    sourceDeployment: { id: "dep_1", name: "deployment-1" },
    deployment: null,
    previousDeployment: { id: "dep_0", name: "deployment-0" },
    ...over,
  };
}

describe("promotionLines (plain progress)", () => {
  it("introduces the promotion with the steps that have started", () => {
    expect(promotionLines(null, promotion())).toEqual([
      "promotion prm_1: deployment-1 into staging (replacing deployment-0): RELEASING",
      "  CREATE_DEPLOYMENT: RUNNING",
    ]);
  });

  it("names only what changed: status, steps (with their message), canary stages", () => {
    const a = promotion();
    const b = promotion({
      steps: [
        step("CREATE_DEPLOYMENT", "SKIPPED", "reusing 'deployment-1'"),
        step("START_DEPLOYMENT", "RUNNING"),
        step("ACTIVATE", "PENDING"),
      ],
      deployment: { id: "dep_1", name: "deployment-1" },
    });
    expect(promotionLines(a, b)).toEqual([
      "  CREATE_DEPLOYMENT: SKIPPED (reusing 'deployment-1')",
      "  START_DEPLOYMENT: RUNNING",
    ]);
    expect(promotionLines(b, b)).toEqual([]);
    const ramping = promotion({ ...b, status: "RAMPING_UP", canaryStage: 0, canaryStages: 10 });
    expect(promotionLines(b, ramping)).toEqual(["promotion RAMPING_UP: ramping up (canary)"]);
    const stage3 = { ...ramping, canaryStage: 3, percentTrafficToNewVersion: 30 };
    expect(promotionLines(ramping, stage3)).toEqual([
      "  canary stage 3/10: 30% of traffic to the new version",
    ]);
  });

  it("ends with the error message of a failed promotion", () => {
    const failed = promotion({
      status: "FAILED",
      errorMessage: "'deployment-1' was not ready within 1 s",
      steps: [
        step("CREATE_DEPLOYMENT", "SKIPPED"),
        step("START_DEPLOYMENT", "FAILED"),
        step("ACTIVATE", "SKIPPED"),
      ],
    });
    const lines = promotionLines(promotion(), failed);
    expect(lines[0]).toBe("promotion FAILED: failed");
    expect(lines).toContain("  START_DEPLOYMENT: FAILED");
    expect(lines.at(-1)).toBe("  'deployment-1' was not ready within 1 s");
  });

  it("names the copy a promotion made", () => {
    const copied = promotion({ deployment: { id: "dep_2", name: "deployment-2" } });
    expect(promotionLines(null, copied)[0]).toContain("deployment-1 (as deployment-2) into staging");
  });
});

describe("promotionFrame (terminal progress)", () => {
  it("shows the steps with their state and durations, and the canary bar", () => {
    const frame = plain(
      promotionFrame(
        promotion({
          status: "RAMPING_UP",
          canaryStage: 4,
          canaryStages: 10,
          percentTrafficToNewVersion: 40,
          steps: [
            step("CREATE_DEPLOYMENT", "SKIPPED"),
            step("START_DEPLOYMENT", "SUCCEEDED", "'deployment-1' is ready"),
            step("ACTIVATE", "PENDING"),
          ],
        }),
        "*",
        Date.parse("2030-01-01T00:00:05Z"),
      ),
    );
    const lines = frame.split("\n");
    expect(lines[0]).toContain("into staging");
    expect(lines[0]).toContain("ramping up");
    expect(lines[1]).toMatch(/CREATE_DEPLOYMENT\s+skipped, 1\.5 s/);
    expect(lines[2]).toMatch(/START_DEPLOYMENT\s+succeeded, 1\.5 s, 'deployment-1' is ready/);
    expect(lines[3]).toMatch(/ACTIVATE\s+pending/);
    expect(lines[4]).toMatch(/canary █{8}░{12}\s+40%\s+stage 4\/10/);
  });

  it("spins on the running step, timing it from its start", () => {
    const frame = plain(promotionFrame(promotion(), "@", Date.parse("2030-01-01T00:00:02Z")));
    expect(frame.split("\n")[1]).toMatch(/@ CREATE_DEPLOYMENT\s+running, 2\.0 s/);
  });
});

describe("progress objects", () => {
  const deployment = (status: string) => ({
    id: "dep_1",
    name: "deployment-1",
    kind: "PUBLISHED",
    status,
    model: { id: "mdl_1", name: "m" },
  });

  it("DeploymentProgress prints one plain line per status, none for repeats", () => {
    const { reporter, lines } = recorder(false);
    let now = 0;
    const progress = new DeploymentProgress(reporter, () => now);
    progress.update(deployment("BUILDING"));
    now = 1_200;
    progress.update(deployment("DEPLOYING"));
    progress.update(deployment("DEPLOYING"));
    now = 1_500;
    progress.update(deployment("ACTIVE"));
    expect(lines).toEqual([
      "deployment deployment-1 (dep_1): BUILDING: building (checking the folder, reading hangar.json)",
      "deployment deployment-1 (dep_1): DEPLOYING: deploying (starting a replica) (after 1.2 s)",
      "deployment deployment-1 (dep_1): ACTIVE: ready (after 0.3 s)",
    ]);
  });

  it("DeploymentProgress on a terminal: a live frame for the current status, lasting lines for the past ones", () => {
    const { reporter, lines, frame } = recorder(true);
    let now = 0;
    const progress = new DeploymentProgress(reporter, () => now);
    progress.update(deployment("BUILDING"));
    expect(frame()).toMatch(/^\* BUILDING/);
    now = 800;
    progress.update(deployment("LOADING_MODEL"));
    expect(lines.at(-1)).toMatch(/✔ BUILDING 0\.8 s/);
    progress.update(deployment("DEPLOY_FAILED"));
    expect(frame()).toBeNull();
    expect(lines.at(-1)).toMatch(/✖ DEPLOY_FAILED/);
  });

  it("PromotionProgress: change lines off a terminal, a final frame on one", () => {
    const plain = recorder(false);
    const p = new PromotionProgress(plain.reporter);
    p.update(promotion());
    p.update(promotion());
    expect(plain.lines).toHaveLength(2);

    const tty = recorder(true);
    const q = new PromotionProgress(tty.reporter);
    q.update(promotion());
    expect(tty.frame()).toContain("CREATE_DEPLOYMENT");
    expect(tty.lines).toEqual([]);
    q.update(promotion({ status: "SUCCEEDED", finishedAt: "2030-01-01T00:00:03Z" }));
    expect(tty.frame()).toBeNull();
    expect(tty.lines[0]).toContain("succeeded");
  });
});
