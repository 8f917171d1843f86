// Builds dist/: the `hangar` command and the server bundled into plain ES modules (esbuild), so that
// a process starts without a TypeScript loader. Under Node 20, tsx's loader runs on a worker thread
// and every import makes a round trip to it: a CLI command costs about a CPU-second to start that
// way, a third of that from the bundle. Packages stay external; `serve` stays a chunk of its own, so a
// client command does not load the server. bin/hangar.mjs runs the bundle only while no input is
// newer than it (dist/build.json), else the sources through tsx: an edit is never run stale.
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = path.join(root, "dist");
// Built beside dist/ and swapped in whole: a launcher never sees half a build.
const staging = path.join(root, `.dist-${process.pid}`);

const startedAt = Date.now();
const result = await build({
  absWorkingDir: root,
  entryPoints: { hangar: "src/cli/main.ts" },
  outdir: staging,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  metafile: true,
  logLevel: "warning",
});
const inputs = Object.keys(result.metafile.inputs).map((input) => path.join(root, input));
// Every input's mtime is compared with this: the time the build started, so that an edit made while
// it ran counts as newer.
await writeFile(path.join(staging, "build.json"), `${JSON.stringify({ builtAt: startedAt, inputs })}\n`);
await rm(dist, { recursive: true, force: true });
await mkdir(path.dirname(dist), { recursive: true });
await rename(staging, dist);
