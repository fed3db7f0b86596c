/**
 * The scheduler's and the kubelet's part of a pod's life: nothing plays them
 * on the test control plane (test-plane.ts), so a test does it by hand, as
 * admin:
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
import type { PodObject } from "../../../plugin/kube/kube-api.ts";
import { path } from "../kube/api-paths.ts";
import { admin } from "./test-plane.ts";

const api = admin.sync;

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

/** A pod with what the kubelet reads and writes beyond what berth models: its containers, and the whole status. */
type KubeletPod = PodObject & { spec: { containers: { name: string; image: string }[] }; status?: Record<string, unknown> & { startTime?: string } };

/** Does the kubelet's job: makes pod NS/NAME Running and Ready with the given IP, via the pods/status subresource. */
export function markPodReady(ns: string, name: string, podIP: string): void {
  const status = path("pods", { ns, name, sub: "status" });
  for (let attempt = 1; ; attempt++) {
    const pod = api.must<KubeletPod>("GET", path("pods", { ns, name }));
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const cond = (type: string) => ({ type, status: "True", lastProbeTime: null, lastTransitionTime: now });
    pod.status = {
      ...pod.status,
      phase: "Running",
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: pod.status?.startTime ?? now,
      conditions: ["Initialized", "PodScheduled", "ContainersReady", "Ready"].map(cond),
      containerStatuses: pod.spec.containers.map((c) => ({
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
