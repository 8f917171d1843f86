import { Command, CommanderError } from "commander";
import { acceptGlobalsFirst } from "./command.ts";
import { register as registerDeploymentControls } from "./commands/deployment-controls.ts";
import { register as registerDeployments } from "./commands/deployments.ts";
import { register as registerEnvironments } from "./commands/environments.ts";
import { register as registerKeys } from "./commands/keys.ts";
import { register as registerLogin } from "./commands/login.ts";
import { register as registerLogs } from "./commands/logs.ts";
import { register as registerMetrics } from "./commands/metrics.ts";
import { register as registerModels } from "./commands/models.ts";
import { register as registerPredict } from "./commands/predict.ts";
import { register as registerPromote } from "./commands/promote.ts";
import { register as registerPromotionControls } from "./commands/promotion-controls.ts";
import { register as registerPush } from "./commands/push.ts";
import { register as registerServe } from "./commands/serve.ts";
import { register as registerWatch } from "./commands/watch.ts";
import { register as registerWebhooks } from "./commands/webhooks.ts";
import { reportError } from "./errors.ts";

const program = new Command("hangar")
  .description("Hangar: deploy machine-learning models and promote them safely into production")
  .showHelpAfterError("(add --help for usage)")
  .exitOverride()
  .addHelpText(
    "after",
    `
Every client command takes --url, --api-key and --json, after the command or before it
(\`hangar --url URL models\`); given in both places, the one after the command wins. The server address
and key come from those flags, else HANGAR_URL / HANGAR_API_KEY, else the config file \`hangar login\`
writes (~/.config/hangar/config.json, or $XDG_CONFIG_HOME/hangar/config.json, or $HANGAR_CONFIG).

Exit codes: 0 success, 1 failed operation (including a refused key or an unreachable server),
2 usage error. Run \`hangar <command> --help\` for a command's flags and examples.`,
  );

// Before any command is added: the commands inherit the positional-options setting.
acceptGlobalsFirst(program);

// Each command file exports register(program); help lists them in this order.
registerPush(program);
registerWatch(program);
registerPromote(program);
registerLogin(program);
registerPromotionControls(program);
registerModels(program);
registerDeployments(program);
registerEnvironments(program);
registerDeploymentControls(program);
registerLogs(program);
registerMetrics(program);
registerPredict(program);
registerKeys(program);
registerWebhooks(program);
registerServe(program);

let code: number;
try {
  await program.parseAsync(process.argv);
  code = typeof process.exitCode === "number" ? process.exitCode : 0;
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end with exit code 0; every other commander error is a usage error.
    code = error.exitCode === 0 ? 0 : 2;
  } else {
    code = reportError(error);
  }
}
// Flush stdout before exiting: a piped --json document must arrive whole.
await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
process.exit(code);
