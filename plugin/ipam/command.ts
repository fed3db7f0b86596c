/**
 * The contract between the CNI boundary and the two modes: what a command
 * receives, and what it hands back. Results are plain data; the boundary
 * shapes them for the configuration's CNI version.
 */
import type { OpenDriver } from "../../store/driver.ts";
import type { Logger } from "../support/logger.ts";
import type { NetConf } from "./config.ts";
import type { Family } from "./ip.ts";

/** The CNI commands a runtime may send. */
export const CNI_COMMANDS = ["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

/** One plugin invocation, as the runtime described it in CNI_* variables. */
export interface Invocation {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key → value. */
  args: Map<string, string>;
}

export interface CommandContext {
  env: Invocation;
  conf: NetConf;
  log: Logger;
  openDriver: OpenDriver;
}

/** One address handed out. */
export interface ResultIp {
  family: Family;
  /** address/prefix, e.g. "10.6.168.101/16" */
  address: string;
  gateway?: string;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

/** What an ADD hands out, before it is shaped for a CNI version. */
export interface AddResult {
  ips: ResultIp[];
  routes: ResultRoute[];
}

export interface CommandOutcome {
  /** ADD's result; none for DEL, CHECK, GC and a healthy STATUS. */
  result?: AddResult;
  /** Undoes an ADD whose result could not be delivered. */
  rollback?: () => void | Promise<void>;
}

/** One command of a mode. VERSION is the boundary's own. */
export type CommandHandler = (ctx: CommandContext) => CommandOutcome | Promise<CommandOutcome>;

/** What each mode (local, cluster) provides. */
export type CommandTable = Record<Exclude<CniCommand, "VERSION">, CommandHandler>;
