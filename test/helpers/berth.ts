/**
 * Runs the compiled dist/berth as a whole process, the way a runtime or a
 * main plugin does. Every black-box test goes through here.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BERTH = process.env.BERTH_BIN ?? join(ROOT, "dist/berth");

if (!existsSync(BERTH)) {
  throw new Error(`${BERTH} is missing: run 'npm run build' first (black-box tests run the compiled binary)`);
}

export interface Invocation {
  command: string;
  containerId?: string;
  ifname?: string;
  netns?: string;
  args?: string;
  /** Extra or overriding environment. */
  env?: Record<string, string>;
  stdin?: string | object;
}

export interface Outcome {
  status: number;
  stdout: string;
  stderr: string;
  /** stdout parsed; undefined when it is empty. Throws if stdout is not exactly one JSON document. */
  json: any;
}

function envFor(inv: Invocation): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", CNI_COMMAND: inv.command, CNI_PATH: "/usr/lib/cni" };
  if (inv.containerId !== undefined) env.CNI_CONTAINERID = inv.containerId;
  if (inv.ifname !== undefined) env.CNI_IFNAME = inv.ifname;
  if (inv.netns !== undefined) env.CNI_NETNS = inv.netns;
  if (inv.args !== undefined) env.CNI_ARGS = inv.args;
  return { ...env, ...inv.env };
}

function stdinText(inv: Invocation): string {
  return typeof inv.stdin === "string" ? inv.stdin : JSON.stringify(inv.stdin ?? {});
}

function outcome(status: number | null, stdout: string, stderr: string): Outcome {
  const trimmed = stdout.trim();
  // JSON.parse of the whole stdout fails if there is anything besides one document.
  const json = trimmed === "" ? undefined : JSON.parse(trimmed);
  return { status: status ?? -1, stdout, stderr, json };
}

/** Runs berth synchronously as a CNI plugin. */
export function cni(inv: Invocation): Outcome {
  const r = spawnSync(BERTH, [], { env: envFor(inv), input: stdinText(inv), encoding: "utf8" });
  return outcome(r.status, r.stdout, r.stderr);
}

/** Runs berth as a CNI plugin without waiting, for concurrency tests. */
export function cniAsync(inv: Invocation): Promise<Outcome> {
  return new Promise((done, fail) => {
    const child = spawn(BERTH, [], { env: envFor(inv), stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", fail);
    child.on("close", (code) => {
      try {
        done(outcome(code, out, err));
      } catch (e) {
        fail(e);
      }
    });
    child.stdin.end(stdinText(inv));
  });
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
  const r = spawnSync("sqlite3", ["-readonly", "-json", dbPath,
    "SELECT 'lease' AS kind, * FROM leases ORDER BY id; SELECT 'binding' AS kind, * FROM bindings ORDER BY address; SELECT 'pool' AS kind, * FROM pools ORDER BY name;"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout;
}

/** Rows of one query through the sqlite3 CLI, as an operator would read them. */
export function sql<T = Record<string, unknown>>(dbPath: string, query: string): T[] {
  const r = spawnSync("sqlite3", ["-readonly", "-json", dbPath, query], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : [];
}
