import { CutAnswer, predict } from "./client.ts";
import type { TestHangar } from "./hangar.ts";
import { waitFor } from "./wait.ts";

export interface Answer {
  /** HTTP status; 0 when the request itself failed (connection refused or reset) or its answer was cut. */
  status: number;
  /** Whose answer it was (a cut answer's too, from its headers); null when none began. */
  deploymentId: string | null;
  errorCode: string | null;
}

const running = new Set<() => Promise<void>>();

/** Several requests in flight at all times against one path; keeps every answer, in order. */
export function steadyClient(hangar: TestHangar, path: string, concurrency = 4) {
  let active = true;
  const answers: Answer[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (active) {
      try {
        const answer = await predict(hangar, path, {});
        const body = answer.body as { error_code?: string } | null;
        answers.push({
          status: answer.status,
          deploymentId: answer.deploymentId,
          errorCode: typeof body?.error_code === "string" ? body.error_code : null,
        });
      } catch (error) {
        const deploymentId = error instanceof CutAnswer ? error.deploymentId : null;
        answers.push({ status: 0, deploymentId, errorCode: (error as Error).message });
      }
    }
  });
  const stop = async () => {
    active = false;
    running.delete(stop);
    await Promise.all(loops);
  };
  running.add(stop);
  return {
    answers,
    /** Resolves once `count` more answers than now have come back. */
    more: async (count: number) => {
      const target = answers.length + count;
      await waitFor(() => answers.length >= target, { what: `${count} more answers` });
    },
    stop,
  };
}

/** Stops every steady client still running (after a test that failed half-way). */
export async function stopSteadyClients(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()));
}
