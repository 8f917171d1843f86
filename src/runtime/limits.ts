/**
 * Resource limits around any launch: the replica's cgroup (runtime/cgroups.ts)
 * is made before it starts, the process joins it before it runs anything, and
 * everything left in it is killed when the replica ends.
 */
import { type Cgroups, JOIN_FAILED_EXIT_CODE, joinCommand } from "./cgroups.ts";
import type { ReplicaLaunch, ReplicaToLaunch, Sandbox } from "./sandbox.ts";

export class Limited implements Sandbox {
  constructor(
    private readonly inner: Sandbox,
    private readonly cgroups: Cgroups,
  ) {}

  get state() {
    return this.inner.state;
  }

  get reason() {
    return this.inner.reason;
  }

  async prepare(replica: ReplicaToLaunch): Promise<ReplicaLaunch> {
    const { resources } = replica.spec;
    const group = await this.cgroups.create(replica.id, resources);
    let launch: ReplicaLaunch;
    try {
      launch = await this.inner.prepare(replica);
    } catch (error) {
      await group.remove().catch(() => {});
      throw error;
    }
    const [file, args] = joinCommand(group.procsFiles, launch.file, launch.args);
    return {
      ...launch,
      file,
      args,
      release: async () => {
        // A process the replica left behind (a daemon it forked) goes with it.
        await group.killAll().catch(() => {});
        await group.remove().catch(() => {});
        await launch.release();
      },
      explainExit: async (code, signal) => {
        if (await group.oomKilled()) return `out of memory (limit ${resources.memoryMb} MB)`;
        if (code === JOIN_FAILED_EXIT_CODE) return "could not join its cgroup (see the line above)";
        return launch.explainExit(code, signal);
      },
    };
  }
}
