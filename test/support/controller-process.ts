/**
 * `berth controller` as a real process on 127.0.0.1:<free port>, for the
 * controller tests and the controller bench: started with a kubeconfig (the
 * controller's ServiceAccount), ready once /healthz answers; its output kept,
 * its /metrics read; stopped with SIGTERM (SIGKILL after a timeout). A
 * process exit hook kills any still running (by pid).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { waitFor } from "./batch.ts";

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

export interface ControllerStart {
  /** The berth binary. */
  bin: string;
  kubeconfig: string;
  identity: string;
  resyncSeconds: number;
  /** --add-timeout-seconds; berth's default when undefined. */
  addTimeoutSeconds?: number;
  /** More flags (e.g. --list-page-size 2). */
  args?: string[];
  /** BERTH_FAULT for the process (plugin/support/faults.ts), e.g. "pause-scan=10". */
  faults?: string;
  /** A cgroup (v1 or v2 directory) the process enters before berth starts, as a container's process does. */
  cgroup?: string;
  /** How often to try /healthz while it starts (default 50 ms). */
  pollMs?: number;
  /** Per HTTP request to it (default 3 s). */
  httpTimeoutMs?: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Every controller process started in this process and not yet exited. */
export const runningControllers = new Set<ControllerProcess>();
process.on("exit", () => {
  for (const c of runningControllers) if (c.alive) c.child.kill("SIGKILL");
});

export class ControllerProcess {
  private out = "";
  exit?: Exit;
  readonly exited: Promise<Exit>;

  constructor(
    readonly identity: string,
    readonly port: number,
    readonly child: ChildProcess,
    readonly httpTimeoutMs = 3000,
  ) {
    child.stdout!.on("data", (d) => (this.out += d));
    child.stderr!.on("data", (d) => (this.out += d));
    this.exited = new Promise((done) =>
      child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        runningControllers.delete(this);
        done(this.exit);
      }),
    );
  }

  /** Starts it; resolves once /healthz answers (15 s), throws with its output if it exits first. */
  static async start<C extends ControllerProcess>(
    this: new (
      identity: string,
      port: number,
      child: ChildProcess,
      httpTimeoutMs?: number,
    ) => C,
    o: ControllerStart,
  ): Promise<C> {
    const port = await freePort();
    const args = ["controller", "--kubeconfig", o.kubeconfig, "--listen", `127.0.0.1:${port}`, "--resync-seconds", String(o.resyncSeconds)];
    if (o.addTimeoutSeconds !== undefined) args.push("--add-timeout-seconds", String(o.addTimeoutSeconds));
    args.push("--identity", o.identity, ...(o.args ?? []));
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...(o.faults ? { BERTH_FAULT: o.faults } : {}) };
    // In a cgroup: a shell joins it and execs berth (same pid), so berth sees its limits from the first instruction.
    const child = o.cgroup
      ? spawn("/bin/sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', o.cgroup, o.bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
      : spawn(o.bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const c = new this(o.identity, port, child, o.httpTimeoutMs);
    runningControllers.add(c);
    await waitFor(
      `controller ${o.identity} to answer /healthz on 127.0.0.1:${port}`,
      async () => {
        if (!c.alive) throw new Error(`controller ${o.identity} exited ${JSON.stringify(c.exit)}:\n${c.logTail()}`);
        const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
        return r?.ok;
      },
      { timeoutMs: 15_000, everyMs: o.pollMs ?? 50 },
    );
    return c;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Everything it printed so far (stdout and stderr). */
  log(): string {
    return this.out;
  }

  logTail(lines = 25): string {
    return this.out.trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** GET on its listen address. */
  async http(path: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, { signal: AbortSignal.timeout(this.httpTimeoutMs) });
    if (!res.ok) throw new Error(`GET ${path} on controller ${this.identity}: ${res.status}`);
    return res.text();
  }

  /** /metrics as name{labels} → value. */
  async metrics(): Promise<Map<string, number>> {
    const m = new Map<string, number>();
    for (const line of (await this.http("/metrics")).split("\n")) {
      const x = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)$/.exec(line.trim());
      if (x) m.set(x[1], Number(x[2]));
    }
    return m;
  }

  async metric(key: string): Promise<number | undefined> {
    return (await this.metrics()).get(key);
  }

  /** Full scans done so far (berth_reconcile_duration_seconds_count). */
  async scans(): Promise<number> {
    return (await this.metric("berth_reconcile_duration_seconds_count")) ?? 0;
  }

  /** SIGTERM (it hands the lease over first), SIGKILL after `timeoutMs`; resolves with how it exited. */
  async stop(timeoutMs = 15_000): Promise<Exit> {
    if (!this.alive) return this.exit!;
    this.child.kill("SIGTERM");
    this.child.kill("SIGCONT"); // a frozen process handles SIGTERM only once it runs
    const t = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const e = await this.exited;
    clearTimeout(t);
    return e;
  }

  /** SIGSTOP: the process freezes, timers and all (a long pause, as a stalled VM or GC would cause). */
  freeze(): void {
    if (this.alive) this.child.kill("SIGSTOP");
  }

  /** SIGCONT after freeze(). */
  thaw(): void {
    if (this.alive) this.child.kill("SIGCONT");
  }

  /** SIGKILL, as a node dying takes it; resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.alive) return;
    this.child.kill("SIGKILL");
    this.child.kill("SIGCONT"); // a frozen process dies only once it runs
    await this.exited;
  }
}
