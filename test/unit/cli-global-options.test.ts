import { Command, CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { acceptGlobalsFirst, action, withGlobals } from "../../src/cli/command.ts";
import { UsageError } from "../../src/cli/errors.ts";

/**
 * A program wired like main.ts, with a client command (`models`), a command group (`keys list`), a
 * client command with an argument and options of its own (`deployments MODEL --all`) and a command
 * without the common options (`serve`); each action records the options it was handed.
 */
function program() {
  const seen: Array<Record<string, unknown>> = [];
  const operands: unknown[][] = [];
  const root = acceptGlobalsFirst(
    new Command("hangar").exitOverride().configureOutput({ writeErr: () => {} }),
  );
  const record = action(async (...args: unknown[]) => {
    seen.push(args.at(-2) as Record<string, unknown>);
    operands.push(args.slice(0, -2));
  });
  withGlobals(root.command("models")).action(record);
  withGlobals(root.command("deployments").argument("<model>").option("--all")).action(record);
  const keys = withGlobals(root.command("keys"));
  withGlobals(keys.command("list")).action(record);
  root.command("serve").option("--port <port>").action(record);
  return {
    seen,
    operands,
    run: async (...argv: string[]) => {
      await root.parseAsync(argv, { from: "user" });
      return seen.at(-1);
    },
  };
}

describe("--url, --api-key and --json before or after the command", () => {
  it("are taken after the command, as before", async () => {
    expect(await program().run("models", "--url", "http://a", "--api-key", "k", "--json")).toEqual({
      url: "http://a",
      apiKey: "k",
      json: true,
    });
  });

  it("are taken before the command", async () => {
    expect(await program().run("--url", "http://a", "models")).toEqual({ url: "http://a" });
    expect(await program().run("--json", "--api-key", "k", "deployments", "m")).toEqual({
      apiKey: "k",
      json: true,
    });
    expect(await program().run("--url=http://a", "keys", "list")).toEqual({ url: "http://a" });
  });

  it("combine from both places, with the command's own options", async () => {
    expect(await program().run("--json", "deployments", "m", "--all", "--api-key", "k")).toEqual({
      json: true,
      all: true,
      apiKey: "k",
    });
  });

  it("the one after the command wins over the one before it", async () => {
    expect(
      await program().run("--url", "http://before", "--api-key", "k1", "models", "--url", "http://after"),
    ).toEqual({ url: "http://after", apiKey: "k1" });
    expect(
      await program().run("--api-key", "k1", "keys", "--api-key", "k2", "list", "--api-key", "k3"),
    ).toEqual({
      apiKey: "k3",
    });
    expect(await program().run("--api-key", "k1", "keys", "--api-key", "k2", "list")).toEqual({
      apiKey: "k2",
    });
  });

  it("a command's argument that looks like a command name is still its argument", async () => {
    const { run, operands } = program();
    expect(await run("--json", "deployments", "models")).toEqual({ json: true });
    expect(operands).toEqual([["models"]]);
  });

  it("before a command that does not take them: a usage error naming them", async () => {
    const { run, seen } = program();
    await expect(run("--json", "--url", "http://a", "serve")).rejects.toThrow(
      new UsageError("`hangar serve` does not take --url, --json"),
    );
    expect(seen).toEqual([]);
    expect(await program().run("serve", "--port", "1")).toEqual({ port: "1" });
  });

  it("unknown options before the command stay usage errors of commander", async () => {
    await expect(program().run("--bogus", "models")).rejects.toThrow(CommanderError);
    await expect(program().run("--url")).rejects.toThrow(CommanderError);
  });
});
