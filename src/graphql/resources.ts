import type { Resources } from "../domain/resources.ts";
import { builder } from "./builder.ts";

/** What a deployment's replicas run with (API.md section 9), the server's process cap included. */
export const ResourcesRef = builder.objectRef<Resources>("Resources").implement({
  description:
    "What each replica of a deployment may use: hangar.json's `resources` over the server's defaults",
  fields: (t) => ({
    cpu: t.exposeFloat("cpu", { description: "Cores, as a CPU quota (0.5: half of one core's time)" }),
    memoryMb: t.exposeInt("memoryMb", { description: "Memory in MB; a replica over it is killed" }),
    pids: t.exposeInt("pids", {
      description:
        "Processes and threads a replica may run at once (the server's HANGAR_REPLICA_PIDS when it was built)",
    }),
  }),
});
