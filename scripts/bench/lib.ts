/**
 * What the benchmark scripts share: knobs, percentiles, tables, the source
 * revision, CPU times. Timing a whole process, bounded parallelism and the
 * control plane come from the test support (test/support/), which the tests
 * use too; IP arithmetic from the product (scripts/bench/addresses.ts).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { TimedResult } from "../../test/support/run-process.ts";

export { inBatches, sleep } from "../../test/support/batch.ts";
export { runProcess as timed, type TimedResult as Timed } from "../../test/support/run-process.ts";

/** The repository. */
export const ROOT = resolve(import.meta.dirname, "../..");

/** `git describe` of the repository's checkout ("-dirty" with uncommitted changes), or "unknown". */
export function gitRev(): string {
  return spawnSync("git", ["-C", ROOT, "describe", "--always", "--dirty", "--exclude", "*"], { encoding: "utf8" }).stdout?.trim() || "unknown";
}

/** A positive integer from the environment, or the default. */
export function intEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Nearest-rank percentile; NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(1, Math.ceil((p / 100) * s.length)) - 1];
}

export const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const r2 = (x: number) => Math.round(x * 100) / 100;
export const r3 = (x: number) => Math.round(x * 1000) / 1000;

export interface Dist {
  p50: number;
  p99: number;
  min: number;
  max: number;
  n: number;
}
export function dist(xs: number[]): Dist {
  if (xs.length === 0) return { p50: NaN, p99: NaN, min: NaN, max: NaN, n: 0 };
  return { p50: r3(percentile(xs, 50)), p99: r3(percentile(xs, 99)), min: r3(Math.min(...xs)), max: r3(Math.max(...xs)), n: xs.length };
}

/** Prints a table: the first column left-aligned, the others right-aligned, numbers with two decimals ("-" for NaN). */
export function table(head: string[], rows: (string | number)[][]) {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === "number" ? (Number.isNaN(c) ? "-" : c.toFixed(2)) : c)))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => `  ${r.map((c, i) => (i > 0 ? c.padStart(w[i]) : c.padEnd(w[i]))).join("  ")}`;
  console.log(line(cells[0]));
  console.log(`  ${w.map((n) => "-".repeat(n)).join("  ")}`);
  for (const r of cells.slice(1)) console.log(line(r));
}

/** A failure that aborts a bench section: its message is the whole report (no stack). */
export class BenchFailure extends Error {}
export function fail(what: string, r?: TimedResult): never {
  const detail = r ? `\n  exit ${r.status}\n  stdout: ${r.stdout.trim()}\n  stderr: ${r.stderr.trim()}` : "";
  throw new BenchFailure(`${what}${detail}`);
}

/**
 * CPU time (user + system, ms) of every child process this process has
 * reaped so far: /proc/self/stat's cutime + cstime. The kernel keeps the sum
 * exactly and reports it in clock ticks (10 ms), so the difference taken
 * around one child's run is within ±10 ms of its CPU, and the sum of such
 * differences over many runs is unbiased (the rounding averages out). Only
 * meaningful while no other child process of ours runs at the same time.
 */
export function childCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields after the command name start at field 3 (state): cutime is field 16, cstime 17.
  return ((Number(f[16 - 3]) + Number(f[17 - 3])) * 1000) / CLK_TCK;
}
/** Linux's USER_HZ, what /proc reports times in; 100 on every architecture Linux builds for today. */
const CLK_TCK = 100;

/** The API server's request counter (apiserver_request_total), summed by "VERB resource code". */
export function requestCounts(metricsText: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const label = (k: string) => new RegExp(`[{,]${k}="([^"]*)"`).exec(line)?.[1] ?? "";
    const sub = label("subresource");
    const key = `${label("verb")} ${label("resource")}${sub ? `/${sub}` : ""} ${label("code")}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return out;
}
/** `after` − `before`, the keys that moved. */
export function countsDiff(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** First spawn → last exit of a set of processes, ms. */
export function span(rs: TimedResult[]): number {
  let first = rs[0].t0;
  let last = rs[0].t1;
  for (const r of rs) {
    if (r.t0 < first) first = r.t0;
    if (r.t1 > last) last = r.t1;
  }
  return Number(last - first) / 1e6;
}
