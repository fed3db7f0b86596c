/** What the benchmark scripts share: knobs, timing a whole process, percentiles, bounded parallelism. */
import { spawn } from "node:child_process";

/** A positive integer from the environment, or the default. */
export function intEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

export interface Timed {
  code: number;
  stdout: string;
  stderr: string;
  /** Spawn to exit, in ms. */
  ms: number;
  /** hrtime (ns) at spawn and at exit, for wall-clock spans over many processes. */
  t0: bigint;
  t1: bigint;
}

/** Spawns `bin`, feeds `stdin`, and times it from spawn to exit with process.hrtime. */
export function timed(bin: string, args: string[], env: Record<string, string>, stdin = ""): Promise<Timed> {
  return new Promise((done, fail) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let t1: bigint | undefined;
    let code: number | null = null;
    let closed = false;
    const finish = () => {
      if (t1 === undefined || !closed) return;
      done({ code: code ?? -1, stdout: out, stderr: err, ms: Number(t1 - t0) / 1e6, t0, t1 });
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

/** Nearest-rank percentile; NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(1, Math.ceil((p / 100) * s.length)) - 1];
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function inBatches<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
