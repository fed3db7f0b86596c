/**
 * Runs the compiled dist/berth as a whole process, the way a runtime or a
 * main plugin does (through test/support/spawn-cni.ts). Every black-box test
 * goes through here.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type CniCall, type CniResult, spawnCni, spawnCniSync } from "./spawn-cni.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BERTH = process.env.BERTH_BIN ?? join(ROOT, "dist/berth");

if (!existsSync(BERTH)) {
  throw new Error(`${BERTH} is missing: run 'npm run build' first (black-box tests run the compiled binary)`);
}

/** One CNI call; CNI_PATH defaults to /usr/lib/cni. */
export type Invocation = Omit<CniCall, "path">;

export interface Outcome {
  status: number;
  /** The signal that ended the process, when one did. */
  signal?: string;
  stdout: string;
  stderr: string;
  /** stdout parsed; undefined when it is empty. Throws if stdout is not exactly one JSON document. */
  json: any;
}

function outcome(r: CniResult): Outcome {
  if (r.jsonError) throw new Error(`berth: ${r.jsonError}`);
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, json: r.json };
}

/** Runs berth synchronously as a CNI plugin. */
export function cni(inv: Invocation): Outcome {
  return outcome(spawnCniSync(BERTH, inv));
}

/** Runs berth as a CNI plugin without waiting, for concurrency tests. */
export async function cniAsync(inv: Invocation): Promise<Outcome> {
  return outcome(await spawnCni(BERTH, inv));
}

/** Runs berth as the operator CLI (from a shell that may export CNI_PATH, as many do). */
export function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(BERTH, args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CNI_PATH: "/opt/cni/bin" }, encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh temporary directory; `cleanup()` removes it. */
export function tempDir(prefix = "berth-test-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** CNI_ARGS as a kubelet/containerd would send them. */
export function podArgs(namespace: string, name: string, uid = `uid-${name}-${Math.random().toString(36).slice(2, 10)}`): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=infra;K8S_POD_UID=${uid}`;
}

/** The seed pool: Spiderpool's test-ippool, as a local-mode pool entry. */
export function seedPool(extra: Record<string, unknown> = {}) {
  return { name: "test-ippool", subnet: "10.6.0.0/16", ips: ["10.6.168.101-10.6.168.110"], gateway: "10.6.0.1", ...extra };
}

/** A network configuration delegating to berth. */
export function netconf(dataDir: string, ipam: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.0.0",
    name: "berth-test",
    type: "bridge",
    ipam: { type: "berth", dataDir, pools: [seedPool()], default_ipv4_ippool: ["test-ippool"], ...ipam },
    ...top,
  };
}

/** Everything an operator could see in the database, for "nothing changed" assertions. */
export function dbSnapshot(dbPath: string): string {
  if (!existsSync(dbPath)) return "(no database)";
  const r = spawnSync(
    "sqlite3",
    [
      "-readonly",
      "-json",
      dbPath,
      "SELECT 'lease' AS kind, * FROM leases ORDER BY id; SELECT 'binding' AS kind, * FROM bindings ORDER BY address; SELECT 'pool' AS kind, * FROM pools ORDER BY name;",
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout;
}

/** Rows of one query through the sqlite3 CLI, as an operator would read them. */
export function sql<T = Record<string, unknown>>(dbPath: string, query: string): T[] {
  const r = spawnSync("sqlite3", ["-readonly", "-json", dbPath, query], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : [];
}
