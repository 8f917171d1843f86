import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import { type ExecutionArgs, GraphQLError } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { createYoga, maskError } from "graphql-yoga";
import { WebSocketServer } from "ws";
import { bearerMatches, resolveAdminKey } from "./auth.ts";
import type { Config } from "./config.ts";
import { Autoscaler } from "./controllers/autoscaler.ts";
import { DeploymentController } from "./controllers/deployments.ts";
import { PromotionController } from "./controllers/promotions.ts";
import { openDatabase } from "./db/client.ts";
import { systemClock } from "./domain/clock.ts";
import { ChangeBus } from "./events/bus.ts";
import { Gateway } from "./gateway/gateway.ts";
import { RouteTable } from "./gateway/routes.ts";
import { TrafficMeter } from "./gateway/traffic.ts";
import type { GraphQLContext } from "./graphql/builder.ts";
import { schema } from "./graphql/schema.ts";
import { SharedSubscriptions, type ShareKey, shareKeyOf } from "./graphql/shared-subscriptions.ts";
import type { Logger } from "./logger.ts";
import { installMemoryProbe } from "./memory-probe.ts";
import { DEFAULT_RUNTIME_OPTIONS, ProcessRuntime, type RuntimeOptions } from "./runtime/process-runtime.ts";
import { ArtifactStore } from "./services/artifacts.ts";
import type { ServiceContext } from "./services/context.ts";
import { LogWriter } from "./services/logs.ts";

export interface RunningServer {
  url: string;
  adminKey: string;
  adminKeyCreated: boolean;
  adminKeyFile: string | null;
  close(): Promise<void>;
}

/** The enveloped executors, carried to graphql-ws through rootValue. */
interface EnvelopedRoot {
  // biome-ignore lint/suspicious/noExplicitAny: envelop's executors are typed loosely.
  execute(args: ExecutionArgs): any;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  subscribe(args: ExecutionArgs): any;
  /** Set when identical subscriptions may share this one's execution. */
  share: ShareKey | null;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

/** A browser on this machine, asking for GraphiQL by a loopback host name. */
function isLocalBrowser(req: IncomingMessage): boolean {
  const host = (req.headers.host ?? "").replace(/:\d+$/, "");
  return (
    LOOPBACK.has(req.socket.remoteAddress ?? "") &&
    ["localhost", "127.0.0.1", "[::1]"].includes(host.toLowerCase())
  );
}

/**
 * Starts Hangar: listens first (so /healthz can say 503 while starting), then
 * opens the database, applies migrations, and starts the controllers.
 */
export async function startServer(
  config: Config,
  log: Logger,
  runtimeOptions: RuntimeOptions = DEFAULT_RUNTIME_OPTIONS,
): Promise<RunningServer> {
  const admin = await resolveAdminKey(config.dataDir, config.adminKey);
  let ready = false;
  let closing = false;
  let handleRequest: ((req: IncomingMessage, res: ServerResponse) => Promise<void>) | null = null;
  let handleUpgrade: ((req: IncomingMessage, socket: Socket, head: Buffer) => void) | null = null;

  const server: Server = createServer((req, res) => {
    const url = req.url ?? "/";
    if (url === "/healthz" || url.startsWith("/healthz?")) {
      return json(res, ready && !closing ? 200 : 503, { status: ready && !closing ? "ok" : "starting" });
    }
    if (!ready || !handleRequest)
      return json(res, 503, { error: "Hangar is starting", error_code: "starting" });
    handleRequest(req, res).catch((error: unknown) => {
      log.error({ err: error }, "request failed");
      if (!res.headersSent) json(res, 500, { error: "internal error", error_code: "internal_error" });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on("upgrade", (req, socket: Socket, head) => {
    if (!handleUpgrade) return socket.destroy();
    handleUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = address && typeof address === "object" ? address.port : config.port;
  const effective: Config = { ...config, port, publicUrl: config.publicUrl.replace(/:0$/, `:${port}`) };

  try {
    const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    const bus = new ChangeBus();
    await bus.start(db);
    const ctx: ServiceContext = {
      config: effective,
      db,
      bus,
      artifacts: new ArtifactStore({
        root: `${config.dataDir}/artifacts`,
        maxUploadBytes: config.maxUploadBytes,
      }),
      logs: new LogWriter(db, (error) => log.error({ err: error }, "writing logs failed")),
      log,
    };
    const controller = new DeploymentController(ctx);
    ctx.reloader = controller;
    const runtime = new ProcessRuntime(controller, runtimeOptions);
    const routes = new RouteTable(db);
    routes.start(bus);
    const traffic = new TrafficMeter(systemClock);
    const gateway = new Gateway(effective, routes, runtime, traffic, controller);
    const autoscaler = new Autoscaler(
      ctx,
      controller,
      runtime,
      traffic,
      systemClock,
      config.autoscalerIntervalMs,
    );

    const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, GraphQLContext>({
      schema,
      graphqlEndpoint: "/graphql",
      landingPage: false,
      renderGraphiQL,
      graphiql: (request) => ({
        title: "Hangar",
        subscriptionsProtocol: "WS",
        // Filled in only for a browser on this machine (see isLocalBrowser).
        headers: request.headers.get("x-hangar-local-browser")
          ? JSON.stringify({ Authorization: `Bearer ${admin.key}` })
          : JSON.stringify({ Authorization: "Bearer <your Hangar API key>" }),
      }),
      context: () => ({ services: ctx, prisma: db.prisma }),
      maskedErrors: {
        // Clients see "Unexpected error."; the operator's log gets the cause.
        maskError: (error, message, isDev) => {
          const cause = error instanceof GraphQLError ? (error.originalError ?? error) : error;
          if (!(cause instanceof GraphQLError)) log.error({ err: cause }, "GraphQL resolver failed");
          return maskError(error, message, isDev);
        },
      },
      logging: {
        debug: (...args) => log.debug(args),
        info: (...args) => log.info(args),
        warn: (...args) => log.warn(args),
        error: (...args) => log.error(args),
      },
    });

    const uploadCeiling = config.maxUploadBytes + 1024 * 1024;
    handleRequest = async (req, res) => {
      const url = new URL(req.url ?? "/", "http://hangar");
      if (url.pathname === "/graphql") {
        const wantsPage = req.method === "GET" && (req.headers.accept ?? "").includes("text/html");
        if (wantsPage) {
          if (isLocalBrowser(req)) req.headers["x-hangar-local-browser"] = "1";
          else delete req.headers["x-hangar-local-browser"];
        } else if (!bearerMatches(req.headers.authorization, admin.key)) {
          req.resume();
          return json(res, 401, { error: "missing or wrong API key", error_code: "unauthorized" });
        }
        if (req.method === "POST") {
          const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
          if (type !== "application/json" && req.headers["graphql-require-preflight"] === undefined) {
            req.resume();
            return json(res, 403, {
              error: "a POST that is not application/json must carry a graphql-require-preflight header",
              error_code: "forbidden",
            });
          }
          // Early refusal of bodies far above any allowed upload; the exact
          // limit is checked by the artifact store as the file streams in.
          if (Number(req.headers["content-length"] ?? 0) > uploadCeiling) {
            req.resume();
            return json(res, 413, { error: "request body too large", error_code: "payload_too_large" });
          }
        }
        return yoga.requestListener(req, res);
      }
      if (url.pathname.startsWith("/models/")) {
        if (!bearerMatches(req.headers.authorization, admin.key)) {
          req.resume();
          return json(res, 401, { error: "missing or wrong API key", error_code: "unauthorized" });
        }
        return gateway.handle(req, res, url.pathname);
      }
      req.resume();
      json(res, 404, { error: `nothing at ${url.pathname}`, error_code: "not_found" });
    };

    const shared = new SharedSubscriptions({
      onUpstream: (event, share, reason) =>
        log.debug({ field: share.field, mode: share.mode, reason }, `shared subscription ${event}`),
    });
    const removeMemoryProbe = installMemoryProbe(log, () => ({ subscriptions: shared.stats() }));
    const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
    const wsServer = useServer<Record<string, unknown>, { request: IncomingMessage }>(
      {
        onConnect: (wsCtx) => bearerMatches(String(wsCtx.connectionParams?.authorization ?? ""), admin.key),
        onSubscribe: async (wsCtx, _id, params) => {
          const enveloped = yoga.getEnveloped({ ...wsCtx, req: wsCtx.extra.request, params });
          let document: ReturnType<typeof enveloped.parse>;
          try {
            document = enveloped.parse(params.query);
          } catch (error) {
            if (error instanceof GraphQLError) return [error];
            throw error;
          }
          const errors = enveloped.validate(enveloped.schema, document);
          if (errors.length > 0) return errors;
          const args: ExecutionArgs = {
            schema: enveloped.schema,
            operationName: params.operationName,
            document,
            variableValues: params.variables,
            contextValue: await enveloped.contextFactory(),
          };
          // Every connection is authenticated with the admin key (onConnect): one identity.
          const share = config.sharedSubscriptions ? shareKeyOf(args, "admin") : null;
          const root: EnvelopedRoot = { execute: enveloped.execute, subscribe: enveloped.subscribe, share };
          return { ...args, rootValue: root };
        },
        execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
        subscribe: (args) => {
          const root = args.rootValue as EnvelopedRoot;
          return root.share ? shared.subscribe(root.share, () => root.subscribe(args)) : root.subscribe(args);
        },
      },
      wss,
    );
    handleUpgrade = (req, socket, head) => {
      const { pathname } = new URL(req.url ?? "/", "http://hangar");
      if (pathname !== "/graphql" || !ready) return socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
    };

    const promotions = new PromotionController(ctx, controller.owner, controller, traffic);
    await controller.start(runtime);
    await promotions.start();
    autoscaler.start();
    ready = true;
    log.info({ url: effective.publicUrl, database: db.kind }, "Hangar is ready");

    return {
      url: effective.publicUrl,
      adminKey: admin.key,
      adminKeyCreated: admin.created,
      adminKeyFile: admin.file,
      close: async () => {
        if (closing) return;
        closing = true;
        removeMemoryProbe();
        // Stop taking new work, let running requests finish, then stop replicas.
        autoscaler.stop();
        await wsServer.dispose();
        await promotions.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await controller.stop();
        server.closeAllConnections();
        await closed;
        routes.stop();
        await ctx.logs.flush();
        await bus.stop();
        await db.close();
      },
    };
  } catch (error) {
    server.close();
    throw error;
  }
}
