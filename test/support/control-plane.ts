/**
 * The test control plane of scripts/testenv.sh (etcd, kube-apiserver and
 * kube-controller-manager 1.20.2 on 127.0.0.1, no kubelet, no scheduler), for
 * the tests and the benchmarks alike: start or reuse it, read where it is
 * (once), stop it, and check that nothing of it is left running.
 *
 * Where it is comes from, in order: the BERTH_* variables that
 * `testenv.sh up` prints (scripts/run-tests.ts passes them to the cluster
 * tests), then $BERTH_TESTENV_DIR/env and the files `up` writes there.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const TESTENV_SCRIPT = join(ROOT, "scripts/testenv.sh");
export const TESTENV_DIR = (process.env.BERTH_TESTENV_DIR || "/tmp/berth-testenv").replace(/\/+$/, "");
/** Nodes that exist in the control plane (no kubelet: testenv.sh's heartbeat keeps their Ready condition True). */
export const NODES = ["node1", "node2", "node3"] as const;
/** The daemons `testenv.sh up` starts. */
export const DAEMONS = ["etcd", "kube-apiserver", "kube-controller-manager"] as const;
/** And those of a real node (BERTH_TESTENV_NODE=1; scripts/testenv-node.sh), with containerd's shims. */
export const NODE_DAEMONS = ["kube-scheduler", "node-ns", "containerd", "kubelet", "kube-proxy", "containerd-shim-runc-v2"] as const;
/** Where the real-node group's control plane lives: never the cluster group's. */
export const REAL_NODE_DIR = "/tmp/berth-realnode";

export interface ControlPlane {
  /** State directory (pki, tokens, logs, kubeconfigs). */
  dir: string;
  /** e.g. https://127.0.0.1:6443 ("" when unknown). */
  server: string;
  /** A cluster admin (group system:masters). */
  adminKubeconfig: string;
  /** The plugin's identity: ServiceAccount kube-system/berth (ClusterRole berth-plugin). */
  pluginKubeconfig: string;
  /** The controller's identity: ServiceAccount kube-system/berth-controller. */
  controllerKubeconfig: string;
  /** The cached kubectl 1.20.2 (not whatever `kubectl` is on PATH); "" when unknown. */
  kubectl: string;
}

/** `export KEY=VALUE` lines (what `testenv.sh up` prints) or KEY=VALUE lines ($DIR/env). */
export function parseVars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/gm)) out[m[1]] = m[2].trim().replace(/^'(.*)'$/, "$1");
  return out;
}

function planeFrom(vars: Record<string, string | undefined>): ControlPlane {
  const dir = (vars.BERTH_TESTENV_DIR || TESTENV_DIR).replace(/\/+$/, "");
  const state = existsSync(join(dir, "env")) ? parseVars(readFileSync(join(dir, "env"), "utf8")) : {};
  return {
    dir,
    server: vars.BERTH_APISERVER || (state.APISERVER_PORT ? `https://127.0.0.1:${state.APISERVER_PORT}` : ""),
    adminKubeconfig: vars.BERTH_ADMIN_KUBECONFIG || join(dir, "admin.kubeconfig"),
    pluginKubeconfig: vars.BERTH_PLUGIN_KUBECONFIG || join(dir, "berth.kubeconfig"),
    controllerKubeconfig: vars.BERTH_CONTROLLER_KUBECONFIG || join(dir, "controller.kubeconfig"),
    kubectl: vars.BERTH_KUBECTL || state.KUBECTL || "",
  };
}

let current: ControlPlane | undefined;

/** Where the control plane is (read once per process; `up()` replaces it with what `up` printed). Does not check that it runs. */
export function controlPlane(): ControlPlane {
  return (current ??= planeFrom(process.env));
}

/** The BERTH_* variables `testenv.sh up` prints, for the environment of a child process. */
export function planeEnv(p: ControlPlane = controlPlane()): Record<string, string> {
  return {
    BERTH_TESTENV_DIR: p.dir,
    BERTH_ADMIN_KUBECONFIG: p.adminKubeconfig,
    BERTH_PLUGIN_KUBECONFIG: p.pluginKubeconfig,
    BERTH_CONTROLLER_KUBECONFIG: p.controllerKubeconfig,
    BERTH_KUBECTL: p.kubectl,
    BERTH_APISERVER: p.server,
  };
}

/** Which control plane: the default one (cluster group), or one with a real node in its own directory. */
export interface Where {
  dir?: string;
  node?: boolean;
}

function whereEnv(w: Where): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (w.dir) env.BERTH_TESTENV_DIR = w.dir;
  if (w.node) env.BERTH_TESTENV_NODE = "1";
  return env;
}

function testenv(command: string, w: Where, timeoutMs = 5 * 60_000) {
  return spawnSync("bash", [TESTENV_SCRIPT, command], { cwd: ROOT, env: whereEnv(w), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
}

/** `testenv.sh status`: is it up and healthy? Says nothing. */
export function isUp(w: Where = {}): boolean {
  return testenv("status", w, 60_000).status === 0;
}

export interface Up {
  plane: ControlPlane;
  /** False when it was already up and healthy before: whoever started it stops it. */
  startedByUs: boolean;
  /** Every variable `up` printed (a real node's BERTH_NODE_* and BERTH_CONTAINERD_* among them). */
  vars: Record<string, string>;
  where: Where;
}

/**
 * `testenv.sh up` (idempotent; builds the Kubernetes binaries the first time,
 * ~10 min): its messages go to our stderr. Throws with the reason if it fails.
 */
export function up(w: Where = {}): Up {
  const wasUp = isUp(w);
  const r = spawnSync("bash", [TESTENV_SCRIPT, "up"], {
    cwd: ROOT,
    env: whereEnv(w),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 45 * 60_000,
  });
  if (r.status !== 0) throw new Error(`bash scripts/testenv.sh up failed (${r.error?.message ?? `exit ${r.status}`}); see its messages above`);
  const vars = parseVars(r.stdout);
  const missing = Object.keys(planeEnv()).filter((k) => !vars[k]);
  if (missing.length) throw new Error(`scripts/testenv.sh up printed no ${missing.join(", ")}`);
  const plane = planeFrom(vars);
  if (!w.dir) current = plane;
  return { plane, startedByUs: !wasUp, vars, where: w };
}

/** `testenv.sh down`: stops the daemons and removes the state dir. Its messages go to our stderr. Returns its exit status. */
export function down(w: Where = {}): number {
  const r = spawnSync("bash", [TESTENV_SCRIPT, "down"], {
    cwd: ROOT,
    env: whereEnv(w),
    encoding: "utf8",
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 5 * 60_000,
  });
  return r.status ?? -1;
}

/** Daemons of the test control plane in `dir` still alive (from /proc: name and a command line naming the dir). */
export function daemonsLeft(dir: string = controlPlane().dir, node = false): { pid: number; cmd: string }[] {
  const names: readonly string[] = node ? [...DAEMONS, ...NODE_DAEMONS] : DAEMONS;
  const out: { pid: number; cmd: string }[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    } catch {
      continue; // gone meanwhile
    }
    if (!argv.length || !names.includes(basename(argv[0]))) continue;
    if (!argv.some((a) => a.startsWith(`${dir}/`) || a.includes(`${dir}/`))) continue;
    out.push({ pid: Number(pid), cmd: argv.join(" ").slice(0, 160) });
  }
  return out;
}
