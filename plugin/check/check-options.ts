/** `berth check`'s flags, checked before anything is read: a usage error is exit code 2. */
import type { CheckArgs } from "./check-main.ts";

/** The parsed command line (mri's output). */
type Flags = Record<string, unknown> & { _: unknown[] };

/** The check's arguments, or a message saying what is wrong with them. */
export function checkOptions(flags: Flags, rest: string[]): CheckArgs | string {
  if (rest.length) return `berth check takes no arguments, got ${JSON.stringify(rest.join(" "))}`;
  const output = (flags.o as string | undefined) ?? "table";
  if (output !== "table" && output !== "json") return `-o must be table or json, got ${JSON.stringify(output)}`;
  const num = (k: string, dflt: number): number | string => {
    if (flags[k] === undefined) return dflt;
    const v = Number(flags[k]);
    return Number.isInteger(v) && v > 0 ? v : `--${k} must be a positive whole number, got ${JSON.stringify(flags[k])}`;
  };
  const pageSize = num("list-page-size", 500);
  const addTimeoutSeconds = num("add-timeout-seconds", 30);
  if (typeof pageSize === "string") return pageSize;
  if (typeof addTimeoutSeconds === "string") return addTimeoutSeconds;
  const node = flags.node === true;
  const db = flags.db as string | undefined;
  const repair = flags.repair === true;
  const dryRun = flags["dry-run"] === true;
  if (dryRun && !repair) return "--dry-run goes with --repair";
  if (db !== undefined && node) return "--db (a local-mode database) and --node (a cluster node's) exclude each other";
  if (repair && (node || db !== undefined)) return "--repair is for the cluster check (not --node or --db)";
  for (const [k, only] of [
    ["data-dir", "--node"],
    ["node-name", "--node"],
  ] as const) {
    if (flags[k] !== undefined && !node) return `--${k} goes with ${only}`;
  }
  if (db !== undefined && flags.kubeconfig !== undefined) return "--db needs no API server: drop --kubeconfig";
  return {
    kubeconfig: flags.kubeconfig as string | undefined,
    output,
    repair,
    dryRun,
    node,
    nodeName: flags["node-name"] as string | undefined,
    dataDir: flags["data-dir"] as string | undefined,
    db,
    pageSize,
    addTimeoutSeconds,
    logLevel: flags["log-level"] as string | undefined,
  };
}
