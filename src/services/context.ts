import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import type { ChangeBus } from "../events/bus.ts";
import type { Logger } from "../logger.ts";
import type { ArtifactStore } from "./artifacts.ts";
import type { LogWriter } from "./logs.ts";
import type { CodeReloader } from "./patch.ts";

/** What every use case needs; built once by the composition root. */
export interface ServiceContext {
  config: Config;
  db: Database;
  bus: ChangeBus;
  artifacts: ArtifactStore;
  logs: LogWriter;
  log: Logger;
  /** Set once the deployment controller exists (it is built from this context). */
  reloader?: CodeReloader;
}
