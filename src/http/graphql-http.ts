/**
 * GraphQL over HTTP: the yoga server (its plugins, error masking, GraphiQL page, logging), and the
 * context each operation runs with. The WebSocket transport (graphql-ws.ts) executes through the
 * same yoga, so both see one set of plugins and one context.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import type { Config } from "../config.ts";
import type { Access } from "../domain/access.ts";
import type { GraphQLContext } from "../graphql/builder.ts";
import { graphqlLimits } from "../graphql/limits.ts";
import { errorMasking } from "../graphql/masking.ts";
import { useDocumentNestingLimit } from "../graphql/nesting.ts";
import { schema } from "../graphql/schema.ts";
import type { Logger } from "../logger.ts";
import type { ServiceContext } from "../services/context.ts";
import { useMalformedParamsAsBadRequest } from "./graphql-params.ts";
import { GRAPHIQL_OPTIONS, renderHangarGraphiQL, setGraphiQLHeaders } from "./pages.ts";
import { useSharedSources } from "./shared-sources.ts";

export type ServerContext = { req: IncomingMessage; res: ServerResponse };
export type HangarYoga = YogaServerInstance<ServerContext, GraphQLContext>;

export class GraphqlOverHttp {
  readonly yoga: HangarYoga;
  /** What each HTTP request's credential allows, found by the routes before yoga sees it. */
  private readonly accessOf = new WeakMap<IncomingMessage, Access>();

  constructor(config: Config, services: ServiceContext, log: Logger) {
    const masking = errorMasking(log);
    this.yoga = createYoga<ServerContext, GraphQLContext>({
      schema,
      graphqlEndpoint: "/graphql",
      landingPage: false,
      // GraphiQL with Hangar's bar (Sign out) and a CSP for its one script (http/pages.ts).
      renderGraphiQL: renderHangarGraphiQL,
      // CORS is http/origin.ts's: yoga's default would let any origin read with credentials.
      cors: false,
      plugins: [
        useMalformedParamsAsBadRequest(),
        useDocumentNestingLimit(),
        ...graphqlLimits(config),
        useSharedSources(),
      ],
      graphiql: GRAPHIQL_OPTIONS,
      context: (initial) => {
        // HTTP: found by the routes (serve); WebSocket: by onConnect, passed in by onSubscribe.
        const access = (initial as { access?: Access }).access ?? this.accessOf.get(initial.req);
        // Neither lets a request without a credential reach yoga.
        if (!access) throw new Error("a GraphQL request reached yoga without an access");
        return { services: { ...services, access }, prisma: services.db.prisma, access };
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
  }

  /** Serves a /graphql request the routes let through, as `access`; `page` when it asked for GraphiQL. */
  async serve(req: IncomingMessage, res: ServerResponse, access: Access, page: boolean): Promise<void> {
    if (page) setGraphiQLHeaders(res);
    this.accessOf.set(req, access);
    await this.yoga.requestListener(req, res);
  }
}
