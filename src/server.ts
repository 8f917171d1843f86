import { hostname } from "node:os";
import type { Config } from "./config.ts";
import { Autoscaler } from "./controllers/autoscaler.ts";
import { DeploymentController } from "./controllers/deployments.ts";
import { leaseOwnerName } from "./controllers/leases.ts";
import { Membership } from "./controllers/membership.ts";
import { PromotionController } from "./controllers/promotions.ts";
import { HttpWebhookSender } from "./controllers/webhook-sender.ts";
import { WebhookWorker } from "./controllers/webhooks.ts";
import { openDatabase } from "./db/client.ts";
import { systemClock } from "./domain/clock.ts";
import { ChangeBus } from "./events/bus.ts";
import { Gateway } from "./gateway/gateway.ts";
import { MemberSecret, PeerDirectory } from "./gateway/peers.ts";
import { RouteTable } from "./gateway/routes.ts";
import { Credentials } from "./http/credentials.ts";
import { GraphqlOverHttp } from "./http/graphql-http.ts";
import { GraphqlOverWebSocket } from "./http/graphql-ws.ts";
import { HttpListener } from "./http/listener.ts";
import { OriginPolicy } from "./http/origin.ts";
import { routes as httpRoutes } from "./http/routes.ts";
import { SessionCookie } from "./http/session-cookie.ts";
import { SharedSubscriptions } from "./http/shared-subscriptions.ts";
import { BrowserSignIn } from "./http/sign-in.ts";
import type { Logger } from "./logger.ts";
import { installMemoryProbe } from "./memory-probe.ts";
import { PrometheusMetrics } from "./metrics/prometheus.ts";
import { replicaCensus } from "./metrics/replica-census.ts";
import { NO_OTHER_MEMBERS, SharedTraffic } from "./metrics/shared-traffic.ts";
import { TrafficMeter } from "./metrics/traffic.ts";
import { TrafficFigures } from "./metrics/traffic-figures.ts";
import { openFence } from "./runtime/fence.ts";
import type { IsolationReport } from "./runtime/isolation.ts";
import { machineOwnerOf } from "./runtime/process-identity.ts";
import { DEFAULT_TIMEOUTS, ProcessRuntime, type RuntimeOptions } from "./runtime/process-runtime.ts";
import { Workspace } from "./runtime/workspace.ts";
import { resolveAdminKey } from "./services/bootstrap-key.ts";
import type { ServiceContext } from "./services/context.ts";
import { installationId, memberSecret } from "./services/installation.ts";
import { Retention } from "./services/retention.ts";
import { createSignInLink } from "./services/sessions.ts";
import { registerBootstrapKey } from "./store/api-keys.ts";
import { ArtifactStore } from "./store/artifacts.ts";
import { LogWriter } from "./store/logs.ts";
import { DatabaseArtifacts } from "./store/shared-artifacts.ts";

export interface RunningServer {
  url: string;
  adminKey: string;
  adminKeyCreated: boolean;
  adminKeyFile: string | null;
  /** This start's one-use browser sign-in link (15 minutes): for the banner only, never the log. */
  signInUrl: string;
  /** How replicas run here (API.md section 9), for the start-up line. */
  isolation: IsolationReport;
  close(): Promise<void>;
}

/**
 * Starts Hangar: listens first (so /healthz can say 503 while starting), then
 * opens the database, applies migrations, and starts the controllers.
 */
export async function startServer(
  config: Config,
  log: Logger,
  timeouts: Pick<RuntimeOptions, "startTimeoutMs" | "drainTimeoutMs"> = DEFAULT_TIMEOUTS,
): Promise<RunningServer> {
  const admin = await resolveAdminKey(config.dataDir, config.adminKey);
  const listener = new HttpListener(log);
  const port = await listener.listen(config.port, config.host);
  const effective: Config = { ...config, port, publicUrl: config.publicUrl.replace(/:0$/, `:${port}`) };
  // API.md section 10: how this member is named and reached, once the port is known.
  const memberName = config.memberName ?? `${hostname()}:${port}`;
  const memberUrl = config.memberUrl ?? effective.publicUrl;

  try {
    const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    db.onConnection((event) => {
      if (event.kind === "lost") log.warn({ err: event.error }, "lost the database connection; reconnecting");
      else log.info("database connection restored; caches read again");
    });
    const bus = new ChangeBus();
    await bus.start(db);
    const bootstrapKey = await registerBootstrapKey(db.prisma, admin.key);
    const workspace = await Workspace.open(config.dataDir);
    const fence = await openFence({ mode: config.sandbox, uidBase: config.sandboxUidBase });
    const { sandbox, report: isolation } = fence;
    for (const reason of isolation.reasons) log.warn(`replicas: ${reason}`);
    const ctx: ServiceContext = {
      config: effective,
      db,
      bus,
      artifacts: new ArtifactStore({
        root: `${config.dataDir}/artifacts`,
        maxUploadBytes: config.maxUploadBytes,
        // The embedded database is one process's: its disk is the store. PostgreSQL may have other members.
        shared: db.kind === "postgres" ? new DatabaseArtifacts(db.prisma) : null,
      }),
      logs: new LogWriter(db, (error) => log.error({ err: error }, "writing logs failed")),
      log,
      clock: systemClock,
      member: leaseOwnerName(systemClock.now()),
      memberName,
      isolation,
    };
    const runtime = new ProcessRuntime({ ...timeouts, workspace, sandbox }, systemClock);
    const membership = new Membership(
      db,
      {
        id: ctx.member,
        name: ctx.memberName,
        url: memberUrl,
        host: hostname(),
        pid: process.pid,
        process: machineOwnerOf(process.pid),
      },
      systemClock,
    );
    const controller = new DeploymentController(ctx, runtime, systemClock, membership);
    ctx.reloader = controller;
    const routeTable = new RouteTable(db);
    routeTable.start(bus);
    const traffic = new TrafficMeter(systemClock);
    // API.md sections 10 and 11: each member writes its counts, and the figures are every member's summed
    // (metrics/shared-traffic.ts). The embedded database has no other member: the controllers read none.
    const sharedTraffic = new SharedTraffic(db.prisma, ctx.member, traffic, systemClock, log);
    const otherMembers = db.kind === "postgres" ? sharedTraffic : NO_OTHER_MEMBERS;
    ctx.figures = new TrafficFigures(db.prisma, () => sharedTraffic.write(), systemClock);
    // API.md section 10: with PostgreSQL, requests for replicas other members run are handed to them.
    const secret = db.kind === "postgres" ? new MemberSecret(await memberSecret(db.prisma)) : null;
    const peers = secret ? new PeerDirectory(db.prisma, ctx.member, secret, systemClock) : null;
    peers?.start(bus);
    // HANGAR_METRICS off: nothing counted (the gateway and the promotions skip a null) and /metrics is 404.
    const prometheus = config.metrics ? new PrometheusMetrics() : null;
    prometheus?.countReplicasWith(replicaCensus(runtime, db.prisma));
    const gateway = new Gateway(effective, routeTable, runtime, traffic, controller, peers, prometheus);
    const autoscaler = new Autoscaler(
      ctx,
      controller,
      runtime,
      traffic,
      systemClock,
      config.autoscalerIntervalMs,
      otherMembers,
    );

    // Browsers: which pages may talk to Hangar (origin.ts), and the session cookie's sign-in (sign-in.ts).
    const credentials = new Credentials(db.prisma, systemClock, log);
    const origins = new OriginPolicy(effective);
    const cookie = SessionCookie.forPublicUrl(await installationId(db.prisma), effective.publicUrl);
    const browser = new BrowserSignIn(db.prisma, credentials, cookie, log);
    const graphql = new GraphqlOverHttp(config, ctx, log);
    const shared = new SharedSubscriptions({
      onUpstream: (event, share, reason) =>
        log.debug({ field: share.field, mode: share.mode, reason }, `shared subscription ${event}`),
    });
    const removeMemoryProbe = installMemoryProbe(log, () => ({ subscriptions: shared.stats() }));
    const sockets = new GraphqlOverWebSocket({
      yoga: graphql.yoga,
      credentials,
      origins,
      browser,
      shared: config.sharedSubscriptions ? shared : null,
      log,
    });
    const bodyLimits = {
      maxBodyBytes: config.maxBodyBytes,
      maxUploadBytes: config.maxUploadBytes,
      spoolPath: () => ctx.artifacts.tempPath("upload"),
    };
    listener.install(
      httpRoutes({
        origins,
        browser,
        credentials,
        graphql,
        gateway: (req, res, pathname, access) => gateway.handle(req, res, pathname, access),
        peers: secret ? { secret, handle: (req, res, id) => gateway.handleForwarded(req, res, id) } : null,
        bodyLimits,
        metrics: prometheus,
      }),
      (req, socket, head) => sockets.handleUpgrade(req, socket, head),
    );

    const promotions = new PromotionController(
      ctx,
      membership,
      controller,
      traffic,
      otherMembers,
      undefined,
      prometheus,
    );
    await controller.start();
    await promotions.start();
    autoscaler.start();
    sharedTraffic.start();
    // Old log lines, unreferenced artifacts and a killed process's leftovers go (services/retention.ts).
    const retention = new Retention({
      db,
      artifacts: ctx.artifacts,
      retentionDays: config.retentionDays,
      clock: systemClock,
      log,
    });
    retention.start();
    // Webhooks (API.md section 11): every member sends, each delivery claimed by one of them.
    const webhookSender = new HttpWebhookSender(config.webhookTimeoutMs, config.webhookAllowLocal);
    const webhooks = new WebhookWorker(db, bus, membership, webhookSender, systemClock, log, {
      retentionMs: config.retentionDays * 24 * 60 * 60_000,
    });
    webhooks.start();
    // Made last, so that its 15 minutes start when Hangar is ready.
    const signInLink = await createSignInLink(db.prisma, bootstrapKey.id);
    listener.open();
    log.info({ url: effective.publicUrl, database: db.kind }, "Hangar is ready");

    let closing = false;
    return {
      url: effective.publicUrl,
      adminKey: admin.key,
      adminKeyCreated: admin.created,
      adminKeyFile: admin.file,
      signInUrl: `${effective.publicUrl}/sign-in/${signInLink.token}`,
      isolation,
      close: async () => {
        if (closing) return;
        closing = true;
        listener.stopping();
        removeMemoryProbe();
        // Stop taking new work, let running requests finish, then stop replicas.
        autoscaler.stop();
        await retention.stop();
        await sockets.close();
        await promotions.stop();
        await webhooks.stop();
        await webhookSender.close();
        const closed = listener.stopListening();
        await controller.stop();
        await fence.close();
        listener.closeAllConnections();
        await closed;
        routeTable.stop();
        await peers?.close();
        await sharedTraffic.stop();
        await ctx.logs.flush();
        await bus.stop();
        await db.close();
      },
    };
  } catch (error) {
    listener.abort();
    throw error;
  }
}
