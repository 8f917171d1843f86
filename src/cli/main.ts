import { Command, CommanderError } from "commander";
import { registerServe } from "./serve.ts";

const program = new Command("hangar")
  .description("Hangar: deploy machine-learning models and promote them safely into production")
  .showHelpAfterError()
  .exitOverride();

registerServe(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  process.stderr.write(`hangar: ${(error as Error).message}\n`);
  process.exit(1);
}
