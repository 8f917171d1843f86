/**
 * The HTTP listener: it listens before Hangar is ready (so that /healthz can say 503 while it
 * starts), refuses what Node's parser or Hangar cannot take before any handler sees it, and hands
 * requests and upgrades to the handlers once they are installed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "../logger.ts";
import {
  answerClientError,
  isClientGone,
  pipelinedUpgrade,
  refuseInTurn,
  trackExchange,
} from "./client-error.ts";
import { requestIdOf } from "./request-id.ts";
import { checkRequest, checkUpgrade, sendRefusal } from "./request-target.ts";
import { json } from "./routes.ts";

/**
 * Answers a request; a promise when it does so later (its failure is answered here, by `rescue` when
 * that takes it).
 */
type RequestHandler = ((req: IncomingMessage, res: ServerResponse) => Promise<void> | undefined) & {
  rescue?(req: IncomingMessage, res: ServerResponse, error: unknown): boolean;
};
type UpgradeHandler = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

const STARTING = { error: "Hangar is starting", error_code: "starting" };

export class HttpListener {
  private readonly server: Server;
  private handlers: { request: RequestHandler; upgrade: UpgradeHandler } | null = null;
  private ready = false;
  private closing = false;

  constructor(private readonly log: Logger) {
    this.server = createServer((req, res) => this.request(req, res));
    this.server.keepAliveTimeout = 65_000;
    this.server.on("upgrade", (req, socket: Socket, head: Buffer) => {
      const refused = checkUpgrade(req) ?? pipelinedUpgrade(socket);
      if (refused) return refuseInTurn(socket, refused);
      if (!this.handlers) return refuseInTurn(socket, { status: 503, ...STARTING });
      // Installed but not ready yet: no socket is opened half-way through the start.
      if (!this.ready) return void socket.destroy();
      this.handlers.upgrade(req, socket, head);
    });
    // What Node's parser cannot read gets its 4xx after the answers owed before it (client-error.ts).
    this.server.on("clientError", answerClientError);
    // Without a listener Node drops a CONNECT without a word (and answers owed before it); Hangar is no proxy.
    this.server.on("connect", (_req, socket: Socket) =>
      refuseInTurn(socket, { status: 400, error: "Hangar is not a proxy", error_code: "client_error" }),
    );
  }

  /** Listens; answers the port (the one asked for, or the one the system chose for 0). */
  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve());
    });
    const address = this.server.address();
    return address && typeof address === "object" ? address.port : port;
  }

  /** Installs the handlers; requests still get 503 until `open`. */
  install(request: RequestHandler, upgrade: UpgradeHandler): void {
    this.handlers = { request, upgrade };
  }

  /** Hangar is ready: /healthz says 200 and the handlers take everything. */
  open(): void {
    this.ready = true;
  }

  /** Hangar is stopping: /healthz says 503 from now on. */
  stopping(): void {
    this.closing = true;
  }

  /** Stops listening; resolves once every connection has ended. */
  stopListening(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    return closed;
  }

  /** Ends the connections still open (after the running requests had their chance). */
  closeAllConnections(): void {
    this.server.closeAllConnections();
  }

  /** Stops at once, for a start that failed. */
  abort(): void {
    this.server.close();
  }

  private request(req: IncomingMessage, res: ServerResponse) {
    trackExchange(req, res);
    // A target, Host or method Hangar cannot take is refused before any handler parses it.
    const checked = checkRequest(req);
    if (!checked.ok) {
      req.resume();
      return sendRefusal(res, checked.refusal);
    }
    const url = req.url ?? "/";
    const up = this.ready && !this.closing;
    if (url === "/healthz" || url.startsWith("/healthz?")) {
      return json(res, up ? 200 : 503, { status: up ? "ok" : "starting" });
    }
    if (!this.ready || !this.handlers) return json(res, 503, STARTING);
    this.handlers.request(req, res)?.catch((error: unknown) => this.failed(req, res, error));
  }

  private failed(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    if (this.handlers?.request.rescue?.(req, res, error)) return;
    // A client that cut its own request off is its business: no error line for every one.
    if (isClientGone(error, req)) {
      this.log.debug({ err: error }, "client went away mid-request");
      return;
    }
    this.log.error({ err: error, requestId: requestIdOf(res) }, "request failed");
    if (!res.headersSent) json(res, 500, { error: "internal error", error_code: "internal_error" });
    else res.destroy();
  }
}
