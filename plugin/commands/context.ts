/** What every CNI command receives, and what it hands back to the boundary. */
import type { CniEnv } from "../cni-env.ts";
import type { NetConf } from "../config.ts";
import type { Logger } from "../logger.ts";
import type { OpenDriver } from "../../store/driver.ts";

export interface CommandContext {
  env: CniEnv;
  conf: NetConf;
  log: Logger;
  openDriver: OpenDriver;
}

export interface CommandOutcome {
  /** The JSON document for stdout; none for DEL, GC and a healthy STATUS. */
  output?: Record<string, unknown>;
  /** Undoes an ADD whose result could not be delivered. */
  rollback?: () => void | Promise<void>;
}
