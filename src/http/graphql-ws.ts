/**
 * GraphQL over WebSocket (graphql-ws on ws): the upgrade (path, origin, the session cookie it
 * brings), connection_init's credential, and each operation run through yoga's envelop, so that
 * the WebSocket sees the same plugins and context as HTTP. Identical subscriptions may share one
 * execution (shared-subscriptions.ts).
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { type ExecutionArgs, type ExecutionResult, GraphQLError } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import { type Access, accessFingerprint } from "../domain/access.ts";
import type { Logger } from "../logger.ts";
import type { Credentials } from "./credentials.ts";
import type { HangarYoga } from "./graphql-http.ts";
import { type OriginPolicy, originRefusal } from "./origin.ts";
import { refuseOnSocket, targetOf } from "./request-target.ts";
import { reportingSources, resolvingSource } from "./shared-sources.ts";
import { type SharedSubscriptions, type ShareKey, shareKeyOf } from "./shared-subscriptions.ts";
import type { BrowserSignIn } from "./sign-in.ts";
import { SocketSweep } from "./socket-sweep.ts";

/** The enveloped executors, carried to graphql-ws through rootValue. */
interface EnvelopedRoot {
  // biome-ignore lint/suspicious/noExplicitAny: envelop's executors are typed loosely.
  execute(args: ExecutionArgs): any;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  subscribe(args: ExecutionArgs): any;
  /** Set when identical subscriptions may share this one's execution. */
  share: ShareKey | null;
}

export interface GraphqlOverWebSocketOptions {
  yoga: HangarYoga;
  credentials: Credentials;
  origins: OriginPolicy;
  browser: BrowserSignIn;
  /** Null when sharing is off (config.sharedSubscriptions, off only to measure). */
  shared: SharedSubscriptions | null;
  log: Logger;
}

export class GraphqlOverWebSocket {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  /** Sockets whose key is revoked or expires (or whose session ends) are closed within seconds. */
  private readonly sweep: SocketSweep;
  /** The session token an upgrade request brought, for onConnect when connection_init has no key. */
  private readonly upgradeSessions = new WeakMap<IncomingMessage, string>();
  private readonly server: ReturnType<typeof useServer>;

  constructor(private readonly options: GraphqlOverWebSocketOptions) {
    this.sweep = new SocketSweep(options.log);
    this.server = this.serve();
  }

  private serve() {
    const { yoga, credentials, shared } = this.options;
    return useServer<Record<string, unknown>, { request: IncomingMessage; access?: Access }>(
      {
        onConnect: async (wsCtx) => {
          const authorization = wsCtx.connectionParams?.authorization;
          // Without a key in connection_init, the session cookie of the upgrade request (own origin only).
          const token =
            authorization === undefined ? this.upgradeSessions.get(wsCtx.extra.request) : undefined;
          const check =
            authorization !== undefined
              ? () => credentials.bearer(authorization)
              : token
                ? () => credentials.session(token)
                : null;
          const access = check ? await check() : null;
          if (!access || !check) return false;
          wsCtx.extra.access = access;
          this.sweep.watch(wsCtx.extra.socket, check);
          return true;
        },
        onSubscribe: async (wsCtx, _id, params) => {
          const access = wsCtx.extra.access;
          if (!access) return [new GraphQLError("the connection is not authenticated")];
          const enveloped = yoga.getEnveloped({ ...wsCtx, req: wsCtx.extra.request, params, access });
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
          const share = shared ? shareKeyOf(args, accessFingerprint(access)) : null;
          const root: EnvelopedRoot = { execute: enveloped.execute, subscribe: enveloped.subscribe, share };
          return { ...args, rootValue: root };
        },
        execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
        subscribe: (args) => {
          const root = args.rootValue as EnvelopedRoot;
          if (!root.share || !shared) return root.subscribe(args);
          return shared.subscribe(
            root.share,
            // One execution for all, reporting each source event so that a joiner can have it afresh.
            (onSource) => root.subscribe({ ...args, rootValue: reportingSources(onSource) }),
            // A joiner's first message: the last source, executed now with its own context.
            async (source) => {
              const result = await root.subscribe({ ...args, rootValue: resolvingSource(source) });
              if (Symbol.asyncIterator in result) throw new Error("resolving a kept source gave a stream");
              return result as ExecutionResult;
            },
          );
        },
      },
      this.wss,
    );
  }

  /** Takes an upgrade request the listener has let through (target, Host, not pipelined). */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
    const { pathname } = targetOf(req);
    if (pathname !== "/graphql") return void socket.destroy();
    // Another site's page may not open a socket (unless listed, then with a key); Hangar's own bring their session.
    const origin = this.options.origins.decideUpgrade(req.headers.origin);
    if (!origin.allowed) {
      return refuseOnSocket(socket, originRefusal("this origin may not open Hangar's WebSocket"));
    }
    const sessionToken = this.options.browser.token(req, origin.session);
    if (sessionToken) this.upgradeSessions.set(req, sessionToken);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.wss.emit("connection", ws, req);
      // A malformed frame is the client's fault, and ws has already closed the socket with
      // its code (1002, 1007, 1009): graphql-ws would print each one to stderr as internal.
      ws.removeAllListeners("error");
      ws.on("error", (error) =>
        this.options.log.debug({ err: error }, "WebSocket protocol error from a client"),
      );
    });
  }

  /** Stops sweeping and closes every socket (subscriptions end). */
  async close(): Promise<void> {
    this.sweep.stop();
    await this.server.dispose();
  }
}
