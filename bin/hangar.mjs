#!/usr/bin/env node
// The `hangar` command. Hangar's sources are TypeScript, run through tsx's loader.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
