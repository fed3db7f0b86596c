/**
 * Spawns a CNI plugin (dist/berth, Debian's bridge or host-local, anything)
 * as a whole process, the way a runtime does: CNI_* in the environment, the
 * network configuration on stdin. Returns the exit status, stdout and stderr,
 * stdout parsed as JSON, and (async) the time from spawn to exit. (The
 * product's own `runCni`, plugin/cni/cni-main.ts, is the plugin's side of
 * the same call, inside the process.)
 */
import { testNodeConfig } from "./node-config.ts";
import { type ProcessResult, runProcess, runProcessSync, type TimedResult } from "./run-process.ts";

export interface CniCall {
  command: string;
  containerId?: string;
  ifname?: string;
  /** CNI_NETNS as given (a path). */
  netns?: string;
  /** CNI_ARGS */
  args?: string;
  /** CNI_PATH; default /usr/lib/cni. */
  path?: string;
  /** Extra or overriding environment. */
  env?: Record<string, string>;
  /** The network configuration: a string as it is, anything else as JSON. */
  stdin?: string | object;
}

export interface CniResult extends ProcessResult {
  /** stdout parsed; undefined when it is empty or not one JSON document (see jsonError). */
  json: any;
  /** Why stdout is not one JSON document, when it is not. */
  jsonError?: string;
}

const PATH = () => process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The environment of one plugin call: PATH, CNI_COMMAND, CNI_PATH, the other
 * CNI_* that are given, BERTH_NODE_CONFIG (the tests' node allows temp
 * paths: node-config.ts), then `env`.
 */
export function cniEnv(c: CniCall): Record<string, string> {
  const env: Record<string, string> = { PATH: PATH(), CNI_COMMAND: c.command, CNI_PATH: c.path ?? "/usr/lib/cni", BERTH_NODE_CONFIG: testNodeConfig() };
  if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifname !== undefined) env.CNI_IFNAME = c.ifname;
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  return { ...env, ...c.env };
}

const stdinOf = (c: CniCall) => (typeof c.stdin === "string" ? c.stdin : JSON.stringify(c.stdin ?? {}));

/** Adds `json`: stdout parsed (JSON.parse of the whole of it fails if there is anything besides one document). */
export function withJson<R extends ProcessResult>(r: R): R & CniResult {
  const trimmed = r.stdout.trim();
  if (trimmed === "") return { ...r, json: undefined };
  try {
    return { ...r, json: JSON.parse(trimmed) };
  } catch (err) {
    return { ...r, json: undefined, jsonError: `stdout is not one JSON document (${(err as Error).message}): ${trimmed.slice(0, 500)}` };
  }
}

/** One plugin process, without waiting: result, parsed stdout, and timing (killed after `killAfterMs`, if given). */
export async function spawnCni(bin: string, c: CniCall, killAfterMs?: number): Promise<TimedResult & CniResult> {
  return withJson(await runProcess(bin, [], cniEnv(c), stdinOf(c), killAfterMs));
}

/** One plugin process, run to its end synchronously. */
export function spawnCniSync(bin: string, c: CniCall, timeoutMs?: number): CniResult {
  return withJson(runProcessSync(bin, [], cniEnv(c), stdinOf(c), timeoutMs));
}
