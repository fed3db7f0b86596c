/**
 * The test control plane for cluster mode: etcd, kube-apiserver and
 * kube-controller-manager 1.20.2 on 127.0.0.1, started by
 *
 *     eval "$(bash scripts/testenv.sh up)"     # idempotent; `down` stops it
 *
 * There is no kubelet and no scheduler. The real controller-manager runs, so
 * a StatefulSet gets its pods (with an ownerReference of kind StatefulSet),
 * and a deleted pod comes back with the same name and a new UID. Nodes node1,
 * node2 and node3 exist (labels only, no status). CRDs from fixtures/crds and
 * fixtures/rbac.yaml are applied; PLUGIN_KUBECONFIG holds the real token of
 * ServiceAccount kube-system/berth (ClusterRole berth-plugin) and verifies TLS
 * with the test CA.
 *
 * Importing this module throws "test control plane not running: run
 * scripts/testenv.sh up" unless the apiserver answers /readyz.
 *
 * Since nothing plays kubelet or scheduler, a test does their part by hand:
 *
 * - Bind a pod to a node (scheduler): POST a v1 Binding to the pods/binding
 *   subresource, which sets spec.nodeName (it can be done once per pod):
 *       POST /api/v1/namespaces/NS/pods/NAME/binding
 *       {"apiVersion":"v1","kind":"Binding","metadata":{"name":"NAME"},
 *        "target":{"apiVersion":"v1","kind":"Node","name":"node1"}}
 *   here `kubectl create --raw <that path> -f -` with the Binding on stdin.
 *   Helper: bindPod(ns, name, "node1").
 *
 * - Make a pod Running and Ready (kubelet): GET the pod, set status.phase =
 *   Running, status.podIP/podIPs, conditions Initialized, PodScheduled,
 *   ContainersReady and Ready = "True", and a ready running containerStatus
 *   per container, then PUT the whole pod to the status subresource
 *       PUT /api/v1/namespaces/NS/pods/NAME/status
 *   here `kubectl replace --raw <that path> -f -` (kubectl 1.20 has no
 *   `patch --subresource`); on 409 Conflict it re-reads and retries.
 *   Helper: markPodReady(ns, name, "10.1.0.10"). With podManagementPolicy
 *   OrderedReady (the default) the StatefulSet controller creates NAME-1 only
 *   after NAME-0 is Running and Ready, so this is how a test steps a set up.
 *
 * - Delete a pod that is bound to a node: a plain `kubectl delete pod` only
 *   sets deletionTimestamp (grace period 30 s) and then waits for the kubelet
 *   to confirm, which never comes: the pod stays Terminating for good, and a
 *   StatefulSet does not recreate it. Unbound pods go at once. The kubelet's
 *   final step is a DELETE with gracePeriodSeconds=0; deletePod(ns, name)
 *   does that (`kubectl delete pod --grace-period=0 --force`), so the
 *   StatefulSet controller recreates it with the same name and a new UID. To
 *   observe the Terminating state first, `kubectl(["delete", "pod", NAME,
 *   "--wait=false"])`, then deletePod. Deleting a StatefulSet leaves its bound
 *   pods Terminating the same way: deletePod them too (or deleteAll()).
 *
 * Only Node built-ins; every call runs the cached kubectl 1.20.2 synchronously.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const DEFAULT_DIR = "/tmp/berth-testenv";
const NOT_RUNNING = "test control plane not running: run scripts/testenv.sh up";

/** KEY=VALUE lines that `testenv.sh up` writes to $BERTH_TESTENV_DIR/env. */
function readStateEnv(dir: string): Record<string, string> {
  const file = join(dir, "env");
  if (!existsSync(file)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

export const TESTENV_DIR = process.env.BERTH_TESTENV_DIR || DEFAULT_DIR;
const state = readStateEnv(TESTENV_DIR);
/** Kubeconfig of a cluster admin (group system:masters). */
export const ADMIN_KUBECONFIG = process.env.BERTH_ADMIN_KUBECONFIG || join(TESTENV_DIR, "admin.kubeconfig");
/** Kubeconfig with the plugin's identity: ServiceAccount kube-system/berth. */
export const PLUGIN_KUBECONFIG = process.env.BERTH_PLUGIN_KUBECONFIG || join(TESTENV_DIR, "berth.kubeconfig");
/** The cached kubectl 1.20.2 (not whatever `kubectl` is on PATH). */
export const KUBECTL = process.env.BERTH_KUBECTL || state.KUBECTL || "";
/** e.g. https://127.0.0.1:6443 */
export const APISERVER = process.env.BERTH_APISERVER || (state.APISERVER_PORT ? `https://127.0.0.1:${state.APISERVER_PORT}` : "");
/** Nodes that exist in the control plane. */
export const NODES = ["node1", "node2", "node3"] as const;

export interface KubectlOptions {
  /** stdin */
  input?: string;
  /** Defaults to ADMIN_KUBECONFIG; pass PLUGIN_KUBECONFIG to act as the plugin. */
  kubeconfig?: string;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface KubectlResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the cached kubectl (admin unless opts.kubeconfig says otherwise). Never throws on a non-zero exit. */
export function kubectl(args: string[], opts: KubectlOptions = {}): KubectlResult {
  const r = spawnSync(
    KUBECTL,
    ["--kubeconfig", opts.kubeconfig ?? ADMIN_KUBECONFIG, "--cache-dir", join(TESTENV_DIR, "kube-cache"), ...args],
    { input: opts.input ?? "", encoding: "utf8", timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20 },
  );
  const stderr = (r.stderr ?? "") + (r.error ? `\n${r.error.message}` : "");
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr };
}

function must(args: string[], opts?: KubectlOptions): string {
  const r = kubectl(args, opts);
  if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** kubectl ARGS -o json, parsed. Throws on failure (e.g. NotFound). */
export function kubectlJson<T = any>(args: string[], opts?: KubectlOptions): T {
  return JSON.parse(must([...args, "-o", "json"], opts)) as T;
}

/** kubectl apply -f - with the given YAML or JSON (as admin). Throws on failure; returns kubectl's stdout. */
export function apply(yaml: string, opts?: Omit<KubectlOptions, "input">): string {
  return must(["apply", "-f", "-"], { ...opts, input: yaml });
}

/** Does the scheduler's job: binds pod NS/NAME to NODE via the pods/binding subresource. */
export function bindPod(ns: string, name: string, node: string): void {
  const binding = {
    apiVersion: "v1",
    kind: "Binding",
    metadata: { name, namespace: ns },
    target: { apiVersion: "v1", kind: "Node", name: node },
  };
  must(["create", "--raw", `/api/v1/namespaces/${ns}/pods/${name}/binding`, "-f", "-"], { input: JSON.stringify(binding) });
}

/** Does the kubelet's job: makes pod NS/NAME Running and Ready with the given IP, via the pods/status subresource. */
export function markPodReady(ns: string, name: string, podIP: string): void {
  const path = `/api/v1/namespaces/${ns}/pods/${name}/status`;
  for (let attempt = 1; ; attempt++) {
    const pod = kubectlJson(["-n", ns, "get", "pod", name]);
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const cond = (type: string) => ({ type, status: "True", lastProbeTime: null, lastTransitionTime: now });
    pod.status = {
      ...pod.status,
      phase: "Running",
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: pod.status?.startTime ?? now,
      conditions: ["Initialized", "PodScheduled", "ContainersReady", "Ready"].map(cond),
      containerStatuses: pod.spec.containers.map((c: { name: string; image: string }) => ({
        name: c.name,
        image: c.image,
        imageID: "",
        containerID: `containerd://${name}-${c.name}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      })),
    };
    const r = kubectl(["replace", "--raw", path, "-f", "-"], { input: JSON.stringify(pod) });
    if (r.status === 0) return;
    if (!/Conflict|the object has been modified/i.test(r.stderr) || attempt >= 5) {
      throw new Error(`marking pod ${ns}/${name} ready failed (exit ${r.status}): ${r.stderr.trim()}`);
    }
  }
}

/**
 * Does the kubelet's last step of a pod deletion: removes NS/NAME now
 * (grace period 0). Without it a pod bound to a node stays Terminating.
 * No error if it is already gone.
 */
export function deletePod(ns: string, name: string): void {
  must(["-n", ns, "delete", "pod", name, "--grace-period=0", "--force", "--ignore-not-found", "--wait=false"]);
}

/**
 * Removes every StatefulSet and pod in NS (default "default"), without waiting
 * for a kubelet: a clean slate between tests.
 */
export function deleteAll(ns = "default"): void {
  must(["-n", ns, "delete", "statefulsets", "--all", "--wait=false"]);
  must(["-n", ns, "delete", "pods", "--all", "--grace-period=0", "--force", "--wait=false"]);
}

/** Polls fn until it returns something other than undefined/false/null; throws after timeoutMs naming `what`. */
export async function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function checkReachable(): void {
  const missing = [ADMIN_KUBECONFIG, PLUGIN_KUBECONFIG].filter((f) => !existsSync(f));
  if (!KUBECTL || !existsSync(KUBECTL)) missing.push(KUBECTL || "BERTH_KUBECTL (and no KUBECTL= in $BERTH_TESTENV_DIR/env)");
  if (missing.length) throw new Error(`${NOT_RUNNING} (missing: ${missing.join(", ")})`);
  const r = kubectl(["get", "--raw", "/readyz"], { timeoutMs: 10_000 });
  if (r.status !== 0 || r.stdout.trim() !== "ok") {
    throw new Error(`${NOT_RUNNING} (${APISERVER || TESTENV_DIR} /readyz: ${(r.stderr || r.stdout).trim()})`);
  }
}

checkReachable();
