/**
 * The layering of DESIGN.md, checked on every `npm run check`: imports point
 * downwards only, nothing imports in a cycle, and domain/ stays pure.
 */
const layer = (name) => `^src/${name}/`;
const IO_MODULES =
  "^(node:)?(fs|fs/promises|net|http|https|http2|child_process|dgram|dns|tls|cluster|worker_threads)$";

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment:
        "no module may import itself through others (type-only imports are erased: Pothos types name each other)",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    {
      name: "domain-is-pure",
      severity: "error",
      comment: "domain/ holds rules and arithmetic: it imports only domain/ and no I/O",
      from: { path: layer("domain") },
      to: { pathNot: [layer("domain")], dependencyTypesNot: ["npm", "npm-dev", "core"] },
    },
    { name: "domain-no-io", severity: "error", from: { path: layer("domain") }, to: { path: IO_MODULES } },
    {
      name: "store-below-use-cases",
      severity: "error",
      comment: "store/ is the tables; it knows nothing of use cases, controllers or transports",
      from: { path: layer("store") },
      to: {
        path: [
          layer("services"),
          layer("controllers"),
          layer("graphql"),
          layer("http"),
          layer("gateway"),
          layer("runtime"),
          "^src/server\\.ts$",
        ],
      },
    },
    {
      name: "services-below-transports",
      severity: "error",
      from: { path: layer("services") },
      to: {
        path: [layer("controllers"), layer("graphql"), layer("http"), layer("gateway"), "^src/server\\.ts$"],
      },
    },
    {
      name: "controllers-below-transports",
      severity: "error",
      from: { path: layer("controllers") },
      to: { path: [layer("graphql"), layer("http"), layer("gateway"), "^src/server\\.ts$"] },
    },
    {
      name: "runtime-reports-facts",
      severity: "error",
      comment: "the runtime takes orders and reports facts: it does not reach into the layers that decide",
      from: { path: layer("runtime") },
      to: {
        path: [
          layer("services"),
          layer("controllers"),
          layer("store"),
          layer("graphql"),
          layer("http"),
          layer("gateway"),
        ],
      },
    },
    {
      name: "cli-is-a-client",
      severity: "error",
      comment: "the hangar command talks to the GraphQL API only (serve starts the server)",
      from: { path: layer("cli"), pathNot: "^src/cli/commands/serve\\.ts$" },
      to: {
        path: "^src/",
        pathNot: [layer("cli"), layer("domain"), "^src/config\\.ts$", "^src/logger\\.ts$"],
      },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "^src/generated/" },
    doNotFollow: { path: "node_modules" },
  },
};
