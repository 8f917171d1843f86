import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { type ExecutionArgs, GraphQLError } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { createYoga } from "graphql-yoga";
import { WebSocketServer } from "ws";
import type { Config } from "./config.ts";
import { Autoscaler } from "./controllers/autoscaler.ts";
import { DeploymentController } from "./controllers/deployments.ts";
import { PromotionController } from "./controllers/promotions.ts";
import { openDatabase } from "./db/client.ts";
import { type Access, accessFingerprint } from "./domain/access.ts";
import { systemClock } from "./domain/clock.ts";
import { ChangeBus } from "./events/bus.ts";
import { Gateway } from "./gateway/gateway.ts";
import { RouteTable } from "./gateway/routes.ts";
import type { GraphQLContext } from "./graphql/builder.ts";
import { graphqlLimits } from "./graphql/limits.ts";
import { errorMasking } from "./graphql/masking.ts";
import { useDocumentNestingLimit } from "./graphql/nesting.ts";
import { schema } from "./graphql/schema.ts";
import { SharedSubscriptions, type ShareKey, shareKeyOf } from "./graphql/shared-subscriptions.ts";
import { type BodyLimits, readGraphqlBody } from "./http/body-limit.ts";
import {
  answerClientError,
  isClientGone,
  pipelinedUpgrade,
  refuseInTurn,
  trackExchange,
} from "./http/client-error.ts";
import { bearerSecret, Credentials } from "./http/credentials.ts";
import { useMalformedParamsAsBadRequest } from "./http/graphql-params.ts";
import { applyOriginDecision, OriginPolicy, originRefusal } from "./http/origin.ts";
import { GRAPHIQL_OPTIONS, renderHangarGraphiQL, setGraphiQLHeaders } from "./http/pages.ts";
import { checkRequest, checkUpgrade, refuseOnSocket, sendRefusal, targetOf } from "./http/request-target.ts";
import { SessionCookie } from "./http/session-cookie.ts";
import { BrowserSignIn, isSignInPath, redirect } from "./http/sign-in.ts";
import { SocketSweep } from "./http/socket-sweep.ts";
import type { Logger } from "./logger.ts";
import { installMemoryProbe } from "./memory-probe.ts";
import { TrafficMeter } from "./metrics/traffic.ts";
import { DEFAULT_RUNTIME_OPTIONS, ProcessRuntime, type RuntimeOptions } from "./runtime/process-runtime.ts";
import { resolveAdminKey } from "./services/bootstrap-key.ts";
import type { ServiceContext } from "./services/context.ts";
import { installationId } from "./services/installation.ts";
import { Retention } from "./services/retention.ts";
import { createSignInLink } from "./services/sessions.ts";
import { registerBootstrapKey } from "./store/api-keys.ts";
import { ArtifactStore } from "./store/artifacts.ts";
import { LogWriter } from "./store/logs.ts";

export interface RunningServer {
  url: string;
  adminKey: string;
  adminKeyCreated: boolean;
  adminKeyFile: string | null;
  /** This start's one-use browser sign-in link (15 minutes): for the banner only, never the log. */
  signInUrl: string;
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

function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

function unauthorized(res: ServerResponse): void {
  json(res, 401, { error: "missing or wrong API key", error_code: "unauthorized" });
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
    trackExchange(req, res);
    // A target, Host or method Hangar cannot take is refused before any handler parses it.
    const checked = checkRequest(req);
    if (!checked.ok) {
      req.resume();
      return sendRefusal(res, checked.refusal);
    }
    const url = req.url ?? "/";
    if (url === "/healthz" || url.startsWith("/healthz?")) {
      return json(res, ready && !closing ? 200 : 503, { status: ready && !closing ? "ok" : "starting" });
    }
    if (!ready || !handleRequest)
      return json(res, 503, { error: "Hangar is starting", error_code: "starting" });
    handleRequest(req, res).catch((error: unknown) => {
      // A client that cut its own request off is its business: no error line for every one.
      if (isClientGone(error, req)) return log.debug({ err: error }, "client went away mid-request");
      log.error({ err: error }, "request failed");
      if (!res.headersSent) json(res, 500, { error: "internal error", error_code: "internal_error" });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on("upgrade", (req, socket: Socket, head) => {
    const refused = checkUpgrade(req) ?? pipelinedUpgrade(socket);
    if (refused) return refuseInTurn(socket, refused);
    if (!handleUpgrade) {
      return refuseInTurn(socket, { status: 503, error: "Hangar is starting", error_code: "starting" });
    }
    handleUpgrade(req, socket, head);
  });
  // What Node's parser cannot read gets its 4xx after the answers owed before it (client-error.ts).
  server.on("clientError", answerClientError);
  // Without a listener Node drops a CONNECT without a word (and answers owed before it); Hangar is no proxy.
  server.on("connect", (_req, socket: Socket) =>
    refuseInTurn(socket, { status: 400, error: "Hangar is not a proxy", error_code: "client_error" }),
  );
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
    const bootstrapKey = await registerBootstrapKey(db.prisma, admin.key);
    const credentials = new Credentials(db.prisma, systemClock, log);
    // Browsers: which pages may talk to Hangar (origin.ts), and the session cookie's sign-in (sign-in.ts).
    const origins = new OriginPolicy(effective);
    const cookie = SessionCookie.forPublicUrl(await installationId(db.prisma), effective.publicUrl);
    const browser = new BrowserSignIn(db.prisma, credentials, cookie, log);
    /** The session token an upgrade request brought, for onConnect when connection_init has no key. */
    const upgradeSessions = new WeakMap<IncomingMessage, string>();
    /** What each HTTP request's credential allows, found before yoga or the gateway sees it. */
    const requestAccess = new WeakMap<IncomingMessage, Access>();
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
    const runtime = new ProcessRuntime(runtimeOptions, systemClock);
    const controller = new DeploymentController(ctx, runtime, systemClock);
    ctx.reloader = controller;
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

    const masking = errorMasking(log);
    const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, GraphQLContext>({
      schema,
      graphqlEndpoint: "/graphql",
      landingPage: false,
      // GraphiQL with Hangar's bar (Sign out) and a CSP for its one script (http/pages.ts).
      renderGraphiQL: renderHangarGraphiQL,
      // CORS is http/origin.ts's: yoga's default would let any origin read with credentials.
      cors: false,
      plugins: [useMalformedParamsAsBadRequest(), useDocumentNestingLimit(), ...graphqlLimits(config)],
      graphiql: GRAPHIQL_OPTIONS,
      context: (initial) => {
        // HTTP: found by handleRequest; WebSocket: by onConnect, passed in by onSubscribe.
        const access = (initial as { access?: Access }).access ?? requestAccess.get(initial.req);
        // Neither lets a request without a credential reach yoga.
        if (!access) throw new Error("a GraphQL request reached yoga without an access");
        return { services: { ...ctx, access }, prisma: db.prisma, access };
      },
      // Clients see "Unexpected error." and an errorId; the operator's log line has the cause and the id.
      maskedErrors: { maskError: masking.maskError },
      logging: {
        debug: (...args) => log.debug(args),
        info: (...args) => log.info(args),
        warn: (...args) => log.warn(args),
        // An error masking has logged with its id is not logged again without it.
        error: (...args) => {
          if (!masking.logged(args[0])) log.error(args);
        },
      },
    });

    const bodyLimits: BodyLimits = {
      maxBodyBytes: config.maxBodyBytes,
      maxUploadBytes: config.maxUploadBytes,
      spoolPath: () => ctx.artifacts.tempPath("upload"),
    };
    handleRequest = async (req, res) => {
      const url = targetOf(req);
      // Origin rules and CORS before any credential (http/origin.ts): preflights, other sites' pages.
      const origin = origins.decide(req.method, url.pathname, req.headers.origin);
      if (applyOriginDecision(res, origin)) return void req.resume();
      if (isSignInPath(url.pathname)) return browser.handle(req, res, url.pathname, origin.session);
      if (url.pathname === "/graphql") {
        const wantsPage = req.method === "GET" && (req.headers.accept ?? "").includes("text/html");
        // A bearer key, else (on Hangar's own origin only) the browser's session.
        const access = await browser.requestAccess(req, origin.session);
        if (wantsPage && !access) {
          req.resume();
          return redirect(res, "/sign-in");
        }
        if (wantsPage) setGraphiQLHeaders(res);
        if (!access) {
          req.resume();
          return unauthorized(res);
        }
        requestAccess.set(req, access);
        if (req.method === "POST") {
          const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
          if (type !== "application/json" && req.headers["graphql-require-preflight"] === undefined) {
            req.resume();
            return json(res, 403, {
              error: "a POST that is not application/json must carry a graphql-require-preflight header",
              error_code: "forbidden",
            });
          }
          // The body is read here within its limits (413 or INVALID_INPUT past them); yoga gets it in req.body.
          if (!(await readGraphqlBody(req, res, bodyLimits))) return;
        }
        return yoga.requestListener(req, res);
      }
      if (url.pathname.startsWith("/models/")) {
        const secret = bearerSecret(req.headers.authorization);
        const access = secret ? await credentials.key(secret) : null;
        if (!access) {
          req.resume();
          return unauthorized(res);
        }
        return gateway.handle(req, res, url.pathname, access);
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
    // Sockets whose key is revoked or expires (or whose session ends) are closed within seconds.
    const sweep = new SocketSweep(log);
    const wsServer = useServer<Record<string, unknown>, { request: IncomingMessage; access?: Access }>(
      {
        onConnect: async (wsCtx) => {
          const authorization = wsCtx.connectionParams?.authorization;
          // Any JSON may come here: String() of {"toString": 1} throws (a 4500 close), so strings only.
          const secret = bearerSecret(typeof authorization === "string" ? authorization : "");
          // Without a key in connection_init, the session cookie of the upgrade request (own origin only).
          const token = authorization === undefined ? upgradeSessions.get(wsCtx.extra.request) : undefined;
          const check = secret
            ? () => credentials.key(secret)
            : token
              ? () => credentials.session(token)
              : null;
          const access = check ? await check() : null;
          if (!access || !check) return false;
          wsCtx.extra.access = access;
          sweep.watch(wsCtx.extra.socket, check);
          return true;
        },
        onSubscribe: async (wsCtx, _id, params) => {
          const access = wsCtx.extra.access;
          if (!access) return [new GraphQLError("the connection is not authenticated")];
          const enveloped = yoga.getEnveloped({
            ...wsCtx,
            req: wsCtx.extra.request,
            params,
            access,
          });
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
          // Only subscribers whose keys see and may do the same things share an execution.
          const share = config.sharedSubscriptions ? shareKeyOf(args, accessFingerprint(access)) : null;
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
      const { pathname } = targetOf(req);
      if (pathname !== "/graphql" || !ready) return socket.destroy();
      // Another site's page may not open a socket (unless listed, then with a key); Hangar's own bring their session.
      const origin = origins.decideUpgrade(req.headers.origin);
      if (!origin.allowed) {
        return refuseOnSocket(socket, originRefusal("this origin may not open Hangar's WebSocket"));
      }
      const sessionToken = browser.token(req, origin.session);
      if (sessionToken) upgradeSessions.set(req, sessionToken);
      wss.handleUpgrade(req, socket, head, (ws) => {
        wss.emit("connection", ws, req);
        // A malformed frame is the client's fault, and ws has already closed the socket with
        // its code (1002, 1007, 1009): graphql-ws would print each one to stderr as internal.
        ws.removeAllListeners("error");
        ws.on("error", (error) => log.debug({ err: error }, "WebSocket protocol error from a client"));
      });
    };

    const promotions = new PromotionController(ctx, controller.owner, controller, traffic);
    await controller.start();
    await promotions.start();
    autoscaler.start();
    // Old log lines, unreferenced artifacts and a killed process's leftovers go (services/retention.ts).
    const retention = new Retention({
      db,
      artifacts: ctx.artifacts,
      retentionDays: config.retentionDays,
      clock: systemClock,
      log,
    });
    retention.start();
    // Made last, so that its 15 minutes start when Hangar is ready.
    const signInLink = await createSignInLink(db.prisma, bootstrapKey.id);
    ready = true;
    log.info({ url: effective.publicUrl, database: db.kind }, "Hangar is ready");

    return {
      url: effective.publicUrl,
      adminKey: admin.key,
      adminKeyCreated: admin.created,
      adminKeyFile: admin.file,
      signInUrl: `${effective.publicUrl}/sign-in/${signInLink.token}`,
      close: async () => {
        if (closing) return;
        closing = true;
        removeMemoryProbe();
        sweep.stop();
        // Stop taking new work, let running requests finish, then stop replicas.
        autoscaler.stop();
        await retention.stop();
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
