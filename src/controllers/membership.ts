import type { Database } from "../db/client.ts";
import type { Clock } from "../domain/clock.ts";
import { machineOwnerHasEnded } from "../runtime/process-identity.ts";
import {
  expireNow,
  goneOwners,
  HEARTBEAT_MS,
  heartbeat,
  join,
  leave,
  MEMBER_STALE_MS,
  type MemberStart,
  overdueStarts,
  processesOf,
} from "../store/members.ts";
import { refusesConnections } from "./member-probe.ts";

/**
 * A start whose last heartbeat is older than this (one missed, with slack for a slow write) and whose
 * URL refuses connections is gone without waiting for its expiry.
 */
export const OVERDUE_MS = HEARTBEAT_MS + 2_000;

/**
 * This start's standing in the cluster (API.md section 10), which every controller asks before it acts:
 * - it may act (take or renew a lease, start or stop a replica, move a promotion) only while its last
 *   heartbeat is recent enough that no other member can have judged it dead: it stops a heartbeat short
 *   of the expiry the others go by, and keeps serving;
 * - it may judge another member dead only once it has itself heartbeat for a whole expiry without a
 *   miss: after an outage every member gets the time to heartbeat again first (a fresh start has seen
 *   no outage and judges at once);
 * - a later start under its name supersedes it: it never acts again.
 * Whether an owner is gone is the database's verdict (store/members.ts), with one shortcut: a start on
 * this machine whose process has ended (runtime/process-identity.ts: same boot, same PID namespace, the
 * PID gone or reused) is gone at once, and recorded so, without waiting for its expiry. On another
 * machine, a start that has missed a heartbeat (OVERDUE_MS) and whose URL refuses connections (its
 * machine answers, nothing listens: the process is gone) is gone too, and recorded so; a hung process or
 * a lost machine refuses nothing and waits for the expiry. The embedded database admits one process, so
 * there every other owner is gone.
 */
export class Membership {
  private lastBeatAt = Number.NEGATIVE_INFINITY;
  /** Since when heartbeats have succeeded without a miss; null after a miss until the next success. */
  private beatingSince: number | null = Number.NEGATIVE_INFINITY;
  private superseded = false;

  constructor(
    private readonly db: Database,
    readonly start: MemberStart,
    private readonly clock: Clock,
    private readonly refuses: (url: string) => Promise<boolean> = refusesConnections,
  ) {}

  get id(): string {
    return this.start.id;
  }

  get name(): string {
    return this.start.name;
  }

  async join(): Promise<void> {
    await join(this.db.prisma, this.start);
    this.lastBeatAt = this.clock.now();
  }

  /** One heartbeat; false when it failed (the database is away) or this start was superseded. */
  async beat(): Promise<boolean> {
    let ok: boolean;
    try {
      ok = await heartbeat(this.db.prisma, this.start.id);
    } catch {
      this.beatingSince = null;
      return false;
    }
    if (!ok) {
      this.superseded = true;
      return false;
    }
    const now = this.clock.now();
    this.lastBeatAt = now;
    this.beatingSince ??= now;
    return true;
  }

  /** Whether this start may act now (see the class comment). */
  canAct(): boolean {
    if (this.superseded) return false;
    // Nobody can take over on the embedded database, which one process holds: it always may.
    if (this.db.kind === "pglite") return true;
    return this.clock.now() - this.lastBeatAt < MEMBER_STALE_MS - HEARTBEAT_MS;
  }

  /** Why it may not act, for a log line; null when it may. */
  whyNotActing(): string | null {
    if (this.superseded) return `a later start of member '${this.start.name}' took over`;
    return this.canAct() ? null : "its heartbeat could not be renewed (is the database reachable?)";
  }

  /** Which of `owners` are gone, so that their leases may be taken; none while it may not judge. */
  async gone(owners: Iterable<string>): Promise<Set<string>> {
    const others = [...new Set(owners)].filter((owner) => owner !== this.start.id);
    if (this.db.kind === "pglite") return new Set(others);
    if (!this.canAct()) return new Set();
    // A process seen to have ended is gone whatever the outage rule below says: it cannot heartbeat again.
    const ended = await this.endedOnThisMachine(others);
    if (this.beatingSince === null || this.clock.now() - this.beatingSince < MEMBER_STALE_MS) return ended;
    const gone = await goneOwners(this.db.prisma, others);
    for (const id of ended) gone.add(id);
    for (const id of await this.refusingOverdue(others.filter((owner) => !gone.has(owner)))) gone.add(id);
    return gone;
  }

  /** Those of `owners` that missed a heartbeat and whose URL refuses connections; recorded as expired now. */
  private async refusingOverdue(owners: string[]): Promise<string[]> {
    const overdue = await overdueStarts(this.db.prisma, owners, OVERDUE_MS);
    const refused = await Promise.all(
      [...overdue].map(async ([id, url]) => ((await this.refuses(url)) ? id : null)),
    );
    const ended = refused.filter((id): id is string => id !== null);
    await expireNow(this.db.prisma, ended);
    return ended;
  }

  /** Those of `owners` whose process ran on this machine and has ended; recorded as expired now. */
  private async endedOnThisMachine(owners: string[]): Promise<Set<string>> {
    const processes = await processesOf(this.db.prisma, owners);
    const ended = [...processes].filter(([, name]) => machineOwnerHasEnded(name)).map(([id]) => id);
    await expireNow(this.db.prisma, ended);
    return new Set(ended);
  }

  /** The last heartbeat of a clean stop: this start is over, and its replicas ended now. */
  async leave(): Promise<void> {
    if (!this.superseded) await leave(this.db.prisma, this.start.id);
  }
}
