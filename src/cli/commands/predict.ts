import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import { CliError, errorForCode, ForbiddenError, UsageError } from "../errors.ts";
import { info, printLine } from "../output.ts";
import { resolveModel } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

interface PredictOptions extends GlobalOptions {
  environment?: string;
  deployment?: string;
  development?: boolean;
  data?: string;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The request body: --data JSON, --data @FILE (@- for stdin), else stdin when it is not a terminal. */
async function requestBody(data: string | undefined): Promise<unknown> {
  let text: string;
  let from: string;
  if (data === undefined) {
    if (process.stdin.isTTY) {
      throw new UsageError("no request body: pass --data JSON, --data @FILE, or pipe the JSON on stdin");
    }
    text = await readStdin();
    from = "stdin";
  } else if (data === "@-") {
    text = await readStdin();
    from = "stdin";
  } else if (data.startsWith("@")) {
    const file = data.slice(1);
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      throw new UsageError(
        `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
    from = file;
  } else {
    text = data;
    from = "--data";
  }
  if (text.trim() === "") throw new UsageError(`the request body from ${from} is empty: it must be JSON`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`the request body from ${from} is not valid JSON: ${(error as Error).message}`);
  }
}

/** `hangar predict MODEL`: one inference request through the gateway. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("predict")
      .argument("<model>", "model name or ID")
      .option("-e, --environment <name>", "call this environment (default: production)")
      .option("-d, --deployment <id>", "call this deployment directly")
      .option("--development", "call the model's development deployment")
      .option("--data <json>", "request body: JSON, or @FILE to read it from a file (@- for stdin)")
      .description("send one request to a model and print its answer")
      .addHelpText(
        "after",
        `
The body must be JSON; without --data it is read from stdin. The answer is printed on stdout (as it
came with --json, indented otherwise); the deployment that served it is named on stderr. An INFERENCE
key may not read models, so with one the model must be given by ID.

Examples:
  $ hangar predict sentiment --data '{"text": "what a great day"}'
  $ hangar predict sentiment --environment staging --data @request.json
  $ hangar predict sentiment --deployment dep_3kTq9x --json < request.json`,
      ),
  ).action(
    action(async (modelRef: string, opts: PredictOptions) => {
      const routes = [
        opts.environment !== undefined && "--environment",
        opts.deployment !== undefined && "--deployment",
        opts.development && "--development",
      ].filter(Boolean);
      if (routes.length > 1) throw new UsageError(`choose one of ${routes.join(" and ")}, not both`);
      const body = await requestBody(opts.data);
      let byId = false;
      const answer = await withApi(opts, async (api) => {
        let modelId: string;
        try {
          modelId = (await resolveModel(api, modelRef)).id;
        } catch (error) {
          // An INFERENCE key may call the gateway but not read models: then the model must be its ID.
          if (!(error instanceof ForbiddenError)) throw error;
          modelId = modelRef;
          byId = true;
        }
        const base = `/models/${encodeURIComponent(modelId)}`;
        const path =
          opts.deployment !== undefined
            ? `${base}/deployments/${encodeURIComponent(opts.deployment)}/predict`
            : opts.environment !== undefined
              ? `${base}/environments/${encodeURIComponent(opts.environment)}/predict`
              : opts.development
                ? `${base}/development/predict`
                : `${base}/predict`;
        return api.gateway(path, body);
      });
      const served = answer.headers.get("x-hangar-deployment-id");
      if (answer.status < 200 || answer.status >= 300) {
        const error = answer.body as { error?: string; error_code?: string } | string;
        const where = served ? ` (deployment ${served})` : "";
        if (typeof error === "object" && error?.error_code) {
          const hints = byId
            ? { model_does_not_exist: "this key may not look models up by name: give the model's ID" }
            : {};
          const failure = errorForCode(error.error_code, `${error.error ?? ""}${where}`, hints);
          throw new CliError(`prediction failed (HTTP ${answer.status}): ${failure.message}`);
        }
        throw new CliError(`prediction failed (HTTP ${answer.status})${where}: ${answer.text.slice(0, 500)}`);
      }
      if (opts.json) {
        process.stdout.write(answer.text.endsWith("\n") ? answer.text : `${answer.text}\n`);
        return;
      }
      if (served) info(`served by deployment ${served}`);
      printLine(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body, null, 2));
    }),
  );
}
