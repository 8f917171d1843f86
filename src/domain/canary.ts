/**
 * The canary ramp's arithmetic (API.md section 6, Canary): ten evenly spaced
 * stages over rampUpDurationSeconds, stage k sending k x 10% of the traffic.
 * Time is counted as "ramp time": it stops while the promotion is paused or
 * Hangar is down, so a stage resumes with exactly the time it had left.
 */
export const CANARY_STAGES = 10;

/** Traffic share of stage k (0 before the ramp starts). */
export function stagePercent(stage: number): number {
  return Math.max(0, Math.min(CANARY_STAGES, stage)) * (100 / CANARY_STAGES);
}

/** Ramp time (ms since the ramp started) at which stage k (1..10) begins; stage 11 means ACTIVATE. */
export function stageStartMs(stage: number, durationS: number): number {
  return Math.round(((stage - 1) * durationS * 1000) / CANARY_STAGES);
}

/** How long stage k lasts (the stages differ by at most 1 ms when the duration does not divide by 10). */
export function stageLengthMs(stage: number, durationS: number): number {
  return stageStartMs(stage + 1, durationS) - stageStartMs(stage, durationS);
}

export interface RampClock {
  /** The current stage, 1..10. */
  stage: number;
  /** Ramp time already spent in this stage, counted up to the last checkpoint. */
  elapsedMs: number;
  /**
   * When the clock last started running (ms, wall clock); null while paused
   * (promotion-plan.ts planIntent stops and restarts it).
   */
  runningSince: number | null;
}

/** Ramp time spent in the current stage by `now`. */
export function spentInStage(clock: RampClock, now: number): number {
  return clock.elapsedMs + (clock.runningSince === null ? 0 : Math.max(0, now - clock.runningSince));
}

/** What is left of the current stage at `now` (0 when it is over). */
export function remainingInStage(clock: RampClock, now: number, durationS: number): number {
  return Math.max(0, stageLengthMs(clock.stage, durationS) - spentInStage(clock, now));
}

/**
 * Moves the clock on to `now`: one stage at most per call, so that every
 * stage is entered (and announced) in order even when a tick comes late; the
 * time the finished stage overran is carried into the next. `activate` once
 * the last stage is over.
 */
export function tickRamp(
  clock: RampClock,
  now: number,
  durationS: number,
): { clock: RampClock; changed: boolean; activate: boolean } {
  const spent = spentInStage(clock, now);
  const length = stageLengthMs(clock.stage, durationS);
  if (spent < length || clock.runningSince === null) return { clock, changed: false, activate: false };
  if (clock.stage >= CANARY_STAGES) return { clock, changed: false, activate: true };
  return {
    clock: { stage: clock.stage + 1, elapsedMs: spent - length, runningSince: now },
    changed: true,
    activate: false,
  };
}

/**
 * A graceful cancel steps back down stage by stage over the ramp time spent so
 * far: from stage s, each of the s steps down takes (time ramped so far) / s.
 */
export function rampDownStepMs(stage: number, durationS: number, spentInCurrentStageMs: number): number {
  if (stage <= 0) return 0;
  const rampedMs = stageStartMs(stage, durationS) + spentInCurrentStageMs;
  return rampedMs / stage;
}

/**
 * Picks the deployment for each request so that the share sent to the new
 * one tracks `percent` exactly over any run of requests (an error diffusion
 * counter, not a coin toss): over 1,000 requests the split is within one
 * request of the stage's percentage.
 */
export class TrafficSplit {
  private credit = 0;

  /** True: send this request to the new deployment. */
  pickNew(percent: number): boolean {
    if (percent <= 0) return false;
    if (percent >= 100) return true;
    this.credit += percent;
    if (this.credit >= 100) {
      this.credit -= 100;
      return true;
    }
    return false;
  }
}

/** What the new deployment answered during one stage, as the gateway counted it. */
export interface StageOutcome {
  answered: number;
  /** Answers with a 5xx status (the model threw, was unavailable or timed out). */
  failed: number;
  /** Requests routed to the new deployment and not answered yet, now (0 when absent). */
  inFlight?: number;
}

/**
 * Before a stage is over its rate is judged only on this many answers: two
 * early failures out of three are not yet a rate. At the stage's end every
 * answer counts, however few.
 */
export const MIN_ANSWERS_TO_JUDGE_EARLY = 20;

/** Share of failed answers, in percent (0 without answers). */
export function failurePercent(outcome: StageOutcome): number {
  return outcome.answered === 0 ? 0 : (outcome.failed * 100) / outcome.answered;
}

/**
 * A stage whose time is up is judged on its answers; one that has none yet while
 * requests to the new deployment are still under way waits for them rather than
 * passing on no evidence: answers slower than a stage (a loaded machine, a slow
 * model, a short ramp) would otherwise never count, and a deployment that fails
 * every request could be promoted. The wait is bounded: the gateway answers or
 * drops every request within its ready and predict timeouts.
 */
export function awaitingAnswers(outcome: StageOutcome): boolean {
  return outcome.answered === 0 && (outcome.inFlight ?? 0) > 0;
}

/**
 * Automatic rollback (API.md section 6): true when the new deployment's share
 * of failed answers in a stage exceeds errorRateThresholdPercent (null: off).
 */
export function errorRateBreached(
  outcome: StageOutcome,
  thresholdPercent: number | null,
  stageOver: boolean,
): boolean {
  if (thresholdPercent === null || outcome.answered === 0) return false;
  if (!stageOver && outcome.answered < MIN_ANSWERS_TO_JUDGE_EARLY) return false;
  return failurePercent(outcome) > thresholdPercent;
}
