/**
 * The test control plane for cluster mode (test/harness/control-plane.ts):
 * etcd, kube-apiserver and kube-controller-manager 1.20.2 on 127.0.0.1,
 * started by `bash scripts/testenv.sh up` (scripts/run-tests.ts does it, and
 * stops it afterwards if it started it).
 *
 * There is no kubelet and no scheduler. The real controller-manager runs, so
 * a StatefulSet gets its pods (with an ownerReference of kind StatefulSet),
 * and a deleted pod comes back with the same name and a new UID. Nodes node1,
 * node2 and node3 exist (labels only, no status). CRDs from fixtures/crds and
 * fixtures/rbac.yaml are applied; PLUGIN_KUBECONFIG holds the real token of
 * ServiceAccount kube-system/berth (ClusterRole berth-plugin) and verifies TLS
 * with the test CA.
 *
 * The tests read and write objects as admin through `admin`
 * (test/harness/admin-client.ts; `admin.sync` blocks), never through kubectl,
 * except where a test checks kubectl's own output (`kubectl get sp` columns,
 * `kubectl auth can-i`).
 *
 * Importing this module throws "test control plane not running: run
 * scripts/testenv.sh up" unless the apiserver answers /readyz.
 *
 * Since nothing plays kubelet or scheduler, a test does their part by hand:
 *
 * - Bind a pod to a node (scheduler): POST a v1 Binding to the pods/binding
 *   subresource, which sets spec.nodeName (it can be done once per pod).
 *   Helper: bindPod(ns, name, "node1").
 *
 * - Make a pod Running and Ready (kubelet): GET the pod, set status.phase =
 *   Running, status.podIP/podIPs, conditions Initialized, PodScheduled,
 *   ContainersReady and Ready = "True", and a ready running containerStatus
 *   per container, then PUT the whole pod to the status subresource; on 409
 *   Conflict re-read and retry. Helper: markPodReady(ns, name, "10.1.0.10").
 *   With podManagementPolicy OrderedReady (the default) the StatefulSet
 *   controller creates NAME-1 only after NAME-0 is Running and Ready, so this
 *   is how a test steps a set up.
 *
 * - Delete a pod that is bound to a node: a plain delete only sets
 *   deletionTimestamp (grace period 30 s) and then waits for the kubelet to
 *   confirm, which never comes: the pod stays Terminating for good, and a
 *   StatefulSet does not recreate it. Unbound pods go at once. The kubelet's
 *   final step is a DELETE with gracePeriodSeconds=0; deletePod(ns, name)
 *   does that, so the StatefulSet controller recreates it with the same name
 *   and a new UID. Deleting a StatefulSet leaves its bound pods Terminating
 *   the same way: deletePod them too (or deleteAll()).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AdminClient, path } from "../kube/admin-client.ts";
import { waitFor as poll } from "../batch.ts";
import { NODES as PLANE_NODES, controlPlane } from "../control-plane.ts";

const NOT_RUNNING = "test control plane not running: run scripts/testenv.sh up";
const plane = controlPlane();

export const TESTENV_DIR = plane.dir;
/** Kubeconfig of a cluster admin (group system:masters). */
export const ADMIN_KUBECONFIG = plane.adminKubeconfig;
/** Kubeconfig with the plugin's identity: ServiceAccount kube-system/berth. */
export const PLUGIN_KUBECONFIG = plane.pluginKubeconfig;
/** The cached kubectl 1.20.2 (not whatever `kubectl` is on PATH). */
export const KUBECTL = plane.kubectl;
/** e.g. https://127.0.0.1:6443 */
export const APISERVER = plane.server;
/** Nodes that exist in the control plane. */
export const NODES = PLANE_NODES;

function checkFiles(): void {
  const missing = [ADMIN_KUBECONFIG, PLUGIN_KUBECONFIG].filter((f) => !existsSync(f));
  if (!APISERVER) missing.push("BERTH_APISERVER (and no APISERVER_PORT= in $BERTH_TESTENV_DIR/env)");
  if (missing.length) throw new Error(`${NOT_RUNNING} (missing: ${missing.join(", ")})`);
}
checkFiles();

/** The API as admin (async); `admin.sync` has the same verbs, blocking. */
export const admin = new AdminClient({ maxSockets: 16 });
const api = admin.sync;

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

/**
 * Runs the cached kubectl (admin unless opts.kubeconfig says otherwise). Never
 * throws on a non-zero exit. Only for tests of kubectl's own output; use
 * `admin` for everything else.
 */
export function kubectl(args: string[], opts: KubectlOptions = {}): KubectlResult {
  if (!KUBECTL || !existsSync(KUBECTL)) throw new Error(`kubectl 1.20.2 not found (${KUBECTL || "no BERTH_KUBECTL, no KUBECTL= in $BERTH_TESTENV_DIR/env"})`);
  const r = spawnSync(KUBECTL, ["--kubeconfig", opts.kubeconfig ?? ADMIN_KUBECONFIG, "--cache-dir", join(TESTENV_DIR, "kube-cache"), ...args], {
    input: opts.input ?? "",
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 64 << 20,
  });
  const stderr = (r.stderr ?? "") + (r.error ? `\n${r.error.message}` : "");
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr };
}

/** Server-side apply (as admin) of a JSON or YAML manifest (several documents, or a `kind: List`). Throws on failure. */
export function apply(manifest: string): void {
  api.apply(manifest);
}

/** Does the scheduler's job: binds pod NS/NAME to NODE via the pods/binding subresource. */
export function bindPod(ns: string, name: string, node: string): void {
  api.create(path("pods", { ns, name, sub: "binding" }), binding(ns, name, node));
}

/** bindPod without blocking: the scheduler's Binding, for many pods at once. */
export async function bindPodAsync(ns: string, name: string, node: string): Promise<void> {
  await admin.create(path("pods", { ns, name, sub: "binding" }), binding(ns, name, node));
}

function binding(ns: string, name: string, node: string) {
  return { apiVersion: "v1", kind: "Binding", metadata: { name, namespace: ns }, target: { apiVersion: "v1", kind: "Node", name: node } };
}

/** Does the kubelet's job: makes pod NS/NAME Running and Ready with the given IP, via the pods/status subresource. */
export function markPodReady(ns: string, name: string, podIP: string): void {
  const status = path("pods", { ns, name, sub: "status" });
  for (let attempt = 1; ; attempt++) {
    const pod = api.must("GET", path("pods", { ns, name }));
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
    const r = api.request("PUT", status, pod);
    if (r.status >= 200 && r.status < 300) return;
    if (r.status !== 409 || attempt >= 5) {
      throw new Error(`marking pod ${ns}/${name} ready failed (${r.status}): ${r.body?.message ?? JSON.stringify(r.body)}`);
    }
  }
}

/**
 * Does the kubelet's last step of a pod deletion: removes NS/NAME now
 * (grace period 0). Without it a pod bound to a node stays Terminating.
 * No error if it is already gone.
 */
export function deletePod(ns: string, name: string): void {
  api.delete(path("pods", { ns, name }), { gracePeriodSeconds: 0 });
}

/**
 * Deletes pods NS/NAMES (all of NS without names) the way `kubectl delete pod
 * --wait=false` does: deletionTimestamp set (bound pods then stay Terminating),
 * or with `force` at once (grace period 0). Throws if a named pod does not exist.
 */
export function deletePods(ns: string, names?: string[], o: { force?: boolean } = {}): void {
  const options = o.force ? { gracePeriodSeconds: 0 } : undefined;
  if (!names) {
    api.delete(path("pods", { ns }), options);
    return;
  }
  for (const name of names) if (!api.delete(path("pods", { ns, name }), options)) throw new Error(`pod ${ns}/${name} not found`);
}

/**
 * Removes every StatefulSet and pod in NS (default "default"), without waiting
 * for a kubelet: a clean slate between tests.
 */
export function deleteAll(ns = "default"): void {
  api.delete(path("statefulsets", { ns }), { propagationPolicy: "Background" });
  api.delete(path("pods", { ns }), { gracePeriodSeconds: 0 });
}

/** Polls fn until it returns something other than undefined/false/null; throws after timeoutMs naming `what`. */
export function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  return poll(what, fn, { timeoutMs, everyMs });
}

function checkReachable(): void {
  let why: string;
  try {
    const r = api.request("GET", "/readyz");
    if (r.status === 200 && String(r.body).trim() === "ok") return;
    why = `${r.status} ${String(typeof r.body === "string" ? r.body : JSON.stringify(r.body)).trim()}`;
  } catch (err) {
    why = (err as Error).message;
  }
  throw new Error(`${NOT_RUNNING} (${APISERVER} /readyz: ${why})`);
}

checkReachable();
