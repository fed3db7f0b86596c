/**
 * Runs a CNI plugin (dist/berth, Debian's bridge or host-local, anything) as
 * a whole process, the way a runtime does: CNI_* in the environment, the
 * network configuration on stdin. Returns the exit status, stdout and stderr,
 * stdout parsed as JSON, and (async) the time from spawn to exit.
 */
import { spawn, spawnSync } from "node:child_process";
import { testNodeConfig } from "./node-config.ts";

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

export interface ProcessResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface TimedResult extends ProcessResult {
  /** Spawn to exit, in ms. */
  ms: number;
  /** hrtime (ns) at spawn and at exit, for wall-clock spans over many processes. */
  t0: bigint;
  t1: bigint;
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

/**
 * Spawns `bin`, feeds `stdin`, collects its output, and times it from spawn to exit with process.hrtime.
 * With `killAfterMs`, a process still running then is killed (SIGKILL; status -1).
 */
export function runProcess(bin: string, args: string[], env: Record<string, string>, stdin = "", killAfterMs?: number): Promise<TimedResult> {
  return new Promise((done, fail) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, args, { env, stdio: ["pipe", "pipe", "pipe"], timeout: killAfterMs, killSignal: "SIGKILL" });
    let out = "";
    let err = "";
    let t1: bigint | undefined;
    let code: number | null = null;
    let closed = false;
    const finish = () => {
      if (t1 === undefined || !closed) return;
      done({ status: code ?? -1, stdout: out, stderr: err, ms: Number(t1 - t0) / 1e6, t0, t1 });
    };
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", fail);
    child.on("exit", (c) => {
      t1 = process.hrtime.bigint();
      code = c;
      finish();
    });
    child.on("close", () => {
      closed = true;
      finish();
    });
    child.stdin.on("error", () => {}); // a plugin that exits without reading stdin (VERSION) is fine
    child.stdin.end(stdin);
  });
}

/** Runs `bin` to completion synchronously; a failure to run it at all (or the timeout) is status -1 with the reason in stderr. */
export function runProcessSync(bin: string, args: string[], env: Record<string, string>, stdin = "", timeoutMs = 60_000): ProcessResult {
  const r = spawnSync(bin, args, { input: stdin, env, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.error) return { status: -1, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}\n${r.error.message}` };
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** One plugin call, without waiting: result, parsed stdout, and timing (killed after `killAfterMs`, if given). */
export async function runCni(bin: string, c: CniCall, killAfterMs?: number): Promise<TimedResult & CniResult> {
  return withJson(await runProcess(bin, [], cniEnv(c), stdinOf(c), killAfterMs));
}

/** One plugin call, synchronously. */
export function runCniSync(bin: string, c: CniCall, timeoutMs?: number): CniResult {
  return withJson(runProcessSync(bin, [], cniEnv(c), stdinOf(c), timeoutMs));
}

/** "exit N / stdout / stderr", for failure messages. */
export function describe(r: ProcessResult): string {
  return `exit ${r.status}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}
