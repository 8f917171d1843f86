#!/usr/bin/env node
// The `hangar` command: the bundle in dist/ (npm run build) while it is up to date with the
// sources, else the TypeScript sources through tsx's loader.
import { readFileSync, statSync } from "node:fs";

const BUNDLE = new URL("../dist/hangar.js", import.meta.url).href;

function bundleIsFresh() {
  try {
    /** @type {{ builtAt: number, inputs: string[] }} */
    const info = JSON.parse(readFileSync(new URL("../dist/build.json", import.meta.url), "utf8"));
    return info.inputs.every((input) => statSync(input).mtimeMs <= info.builtAt);
  } catch {
    return false; // no build, or an input gone: the sources decide
  }
}

if (bundleIsFresh()) {
  await import(BUNDLE);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
}
