/**
 * Runs a program as a whole process and collects what it did: exit status,
 * stdout and stderr, and (async) the time from spawn to exit. The CNI calls
 * (spawn-cni.ts), the simulated kubelet's `ip` commands and the benches all
 * go through here.
 */
import { spawn, spawnSync } from "node:child_process";

export interface ProcessResult {
  status: number;
  stdout: string;
  stderr: string;
  /** The signal that ended the process, when one did. */
  signal?: string;
}

export interface TimedResult extends ProcessResult {
  /** Spawn to exit, in ms. */
  ms: number;
  /** hrtime (ns) at spawn and at exit, for wall-clock spans over many processes. */
  t0: bigint;
  t1: bigint;
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
    let signal: string | undefined;
    let closed = false;
    const finish = () => {
      if (t1 === undefined || !closed) return;
      done({ status: code ?? -1, signal, stdout: out, stderr: err, ms: Number(t1 - t0) / 1e6, t0, t1 });
    };
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", fail);
    child.on("exit", (c, sig) => {
      t1 = process.hrtime.bigint();
      code = c;
      signal = sig ?? undefined;
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
  if (r.error) return { status: -1, signal: r.signal ?? undefined, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}\n${r.error.message}` };
  return { status: r.status ?? -1, signal: r.signal ?? undefined, stdout: r.stdout, stderr: r.stderr };
}

/** "exit N / stdout / stderr", for failure messages. */
export function describe(r: ProcessResult): string {
  return `exit ${r.status}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}
