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
    // The kernel's slow path for the join below is taken now, while the rest is prepared (Cgroups.warm).
    this.cgroups.warm();
    // The group and the launch side by side: neither needs the other.
    const [made, prepared] = await Promise.allSettled([
      this.cgroups.create(replica.id, resources),
      this.inner.prepare(replica),
    ]);
    if (made.status === "rejected" || prepared.status === "rejected") {
      if (made.status === "fulfilled") await made.value.remove().catch(() => {});
      if (prepared.status === "fulfilled") await prepared.value.release().catch(() => {});
      throw made.status === "rejected" ? made.reason : (prepared as PromiseRejectedResult).reason;
    }
    const group = made.value;
    const launch = prepared.value;
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
