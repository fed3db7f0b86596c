/**
 * The test control plane as the cluster tests see it (../control-plane.ts
 * says where it is): etcd, kube-apiserver and kube-controller-manager 1.20.2
 * on 127.0.0.1, started by `bash scripts/testenv.sh up` (scripts/run-tests.ts
 * does it, and stops it afterwards if it started it).
 *
 * There is no kubelet and no scheduler (kubelet.ts plays their part). The
 * real controller-manager runs, so a StatefulSet gets its pods (with an
 * ownerReference of kind StatefulSet), and a deleted pod comes back with the
 * same name and a new UID. Nodes node1, node2 and node3 exist (labels only;
 * testenv.sh's heartbeat keeps them Ready). CRDs from fixtures/crds and
 * fixtures/rbac.yaml are applied; PLUGIN_KUBECONFIG holds the real token of
 * ServiceAccount kube-system/berth (ClusterRole berth-plugin) and verifies TLS
 * with the test CA.
 *
 * The tests read and write objects as admin through `admin`
 * (../kube/admin-client.ts; `admin.sync` blocks), never through kubectl,
 * except where a test checks kubectl's own output (../kube/kubectl.ts).
 *
 * Importing this module throws "test control plane not running: run
 * scripts/testenv.sh up" unless the apiserver answers /readyz.
 */
import { existsSync } from "node:fs";
import { waitFor as poll } from "../batch.ts";
import { controlPlane, NODES as PLANE_NODES } from "../control-plane.ts";
import { AdminClient } from "../kube/admin-client.ts";

const NOT_RUNNING = "test control plane not running: run scripts/testenv.sh up";
const plane = controlPlane();

export const TESTENV_DIR = plane.dir;
/** Kubeconfig of a cluster admin (group system:masters). */
export const ADMIN_KUBECONFIG = plane.adminKubeconfig;
/** Kubeconfig with the plugin's identity: ServiceAccount kube-system/berth. */
export const PLUGIN_KUBECONFIG = plane.pluginKubeconfig;
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

/** Server-side apply (as admin) of a JSON or YAML manifest (several documents, or a `kind: List`). Throws on failure. */
export function apply(manifest: string): void {
  admin.sync.apply(manifest);
}

/** Polls fn until it returns something other than undefined/false/null; throws after timeoutMs naming `what`. */
export function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  return poll(what, fn, { timeoutMs, everyMs });
}

function checkReachable(): void {
  let why: string;
  try {
    const r = admin.sync.request("GET", "/readyz");
    if (r.status === 200 && String(r.body).trim() === "ok") return;
    why = `${r.status} ${String(typeof r.body === "string" ? r.body : JSON.stringify(r.body)).trim()}`;
  } catch (err) {
    why = (err as Error).message;
  }
  throw new Error(`${NOT_RUNNING} (${APISERVER} /readyz: ${why})`);
}

checkReachable();
