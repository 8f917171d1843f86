import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import { CliError, UsageError } from "../errors.ts";
import { printJsonLine, printLine } from "../output.ts";
import type { GlobalOptions } from "../target.ts";

interface LogLine {
  at: string;
  replica: string | null;
  stream: string;
  line: string;
}

const LINE_FIELDS = "at replica stream line";

function key(l: LogLine): string {
  return JSON.stringify([l.at, l.replica, l.stream, l.line]);
}

function formatLine(l: LogLine): string {
  const source = l.replica ? `${l.replica} ${l.stream}` : l.stream;
  return `${l.at} [${source}] ${l.line}`;
}

function parseTail(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--tail must be a whole number >= 0, got '${raw}'`);
  return n;
}

/** `hangar logs DEPLOYMENT [-f]`: build and replica output. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("logs")
      .argument("<deployment>", "deployment ID (`hangar deployments MODEL` lists them)")
      .option("-f, --follow", "keep printing new lines as they are written, until Ctrl-C")
      .option("-n, --tail <lines>", "how many of the latest lines to print first", "100")
      .description("print a deployment's build and replica output")
      .addHelpText(
        "after",
        `
Each line shows when it was written, where it came from (build, or a replica's stdout/stderr) and the
text. --json prints one LogLine object per line: {"at", "replica", "stream", "line"}.

Examples:
  $ hangar logs dep_3kTq9x --tail 20
  $ hangar logs dep_3kTq9x -f
  $ hangar logs dep_3kTq9x --json | jq -r 'select(.stream == "stderr") | .line'`,
      ),
  ).action(
    action(async (id: string, opts: GlobalOptions & { follow?: boolean; tail: string }) => {
      const tail = parseTail(opts.tail);
      const print = (l: LogLine) => (opts.json ? printJsonLine(l) : printLine(formatLine(l)));
      await withApi(opts, async (api) => {
        const fetchTail = async () => {
          const data = await api.query<{ deployment: { status: string; logs: LogLine[] } | null }>(
            `query Logs($id: ID!, $last: Int) { deployment(id: $id) { status logs(last: $last) { ${LINE_FIELDS} } } }`,
            { id, last: tail },
          );
          if (!data.deployment) {
            throw new CliError(`no deployment with ID '${id}' (\`hangar deployments MODEL\` lists them)`);
          }
          return tail === 0 ? [] : data.deployment.logs;
        };
        if (!opts.follow) {
          for (const l of await fetchTail()) print(l);
          return;
        }
        // Subscribe first and hold what arrives, then print the tail, then the held lines the tail did
        // not already have: no line written meanwhile is lost or printed twice.
        let held: LogLine[] | null = [];
        const printed = new Set<string>();
        const subscription = api.subscribe<{ deploymentLogs: LogLine }>(
          `subscription FollowLogs($id: ID!) { deploymentLogs(deploymentId: $id) { ${LINE_FIELDS} } }`,
          { id },
          (data) => {
            if (held) held.push(data.deploymentLogs);
            else print(data.deploymentLogs);
          },
        );
        const stop = () => subscription.close();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        try {
          await Promise.race([api.whenConnected(), subscription.done]);
          for (const l of await fetchTail()) {
            printed.add(key(l));
            print(l);
          }
          const pending: LogLine[] = held;
          held = null;
          for (const l of pending) if (!printed.has(key(l))) print(l);
          await subscription.done;
        } finally {
          subscription.close();
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
        }
      });
    }),
  );
}
