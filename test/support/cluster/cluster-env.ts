/**
 * Shared machinery of the cluster-mode end-to-end tests (test/cluster/*.test.ts),
 * and the one module they import it from (the plane, the kubelet's verbs and
 * kubectl are re-exported here).
 *
 * A test plays kubelet and scheduler by hand (see kubelet.ts):
 *
 * - a simulated node is a nodeName plus its own dataDir (berth's node
 *   database) and logFile; all of them share this host;
 * - the "kubelet" runs Debian's /usr/lib/cni/bridge with berth as its ipam
 *   plugin in an `ip netns` namespace it creates, exactly as the chain tests
 *   do (a temp dir holding a `berth` symlink to dist/berth comes first in
 *   CNI_PATH), or runs dist/berth directly when no interface is needed;
 * - berth always runs with PLUGIN_KUBECONFIG (ServiceAccount kube-system/berth,
 *   the shipped least-privilege role), never the admin one; the test itself
 *   reads and writes objects as admin, through the one admin client
 *   (../kube/admin-client.ts; the helpers here use its blocking `sync`
 *   verbs), not kubectl; the objects are the product's types
 *   (plugin/kube/kube-api.ts).
 *
 * Everything a test makes (namespaces, SpiderIPPools, BerthIPClaims of its
 * pools, network namespaces, the bridge, attachments, temp dirs) is recorded
 * in a ClusterScope and undone by its cleanup(), which runs from `finally`
 * whatever state the test died in. Each test file uses its own names
 * (namespace, pools, address range, bridge, network, netns prefix), so files
 * can run in one process, one after the other.
 *
 * Claims are cluster-wide and named after the address, so files must not
 * share addresses either. In use: seed 10.6.168.101-110 (the seed's
 * test-ippool), reschedule 10.6.170.x, concurrency 10.6.171.1-50, errors
 * 10.6.172.x, dual-stack 10.6.173.x and fd00:6:173::/64, pool-choice
 * 10.6.174.x, controller 10.6.175.1-70, controller-soak 10.6.176.1-250,
 * controller-restart 10.6.177.1-50, controller-safety 10.6.178.1-250, mixed-versions
 * 10.6.180.1-200, fault-soak 10.6.181.1-250 and 10.6.184.1-100 (its deleted
 * namespace), controller-counts 10.6.182.1-40 and fd00:6:182::1-a,
 * kubeconfig-forms 10.6.183.1-10, plugin-safety 10.6.190.x, hold-safety
 * 10.6.191.1-127, membership 10.6.191.128-250, nad-safety 10.6.192.x,
 * store-safety 10.6.193.x, check 10.6.194.x, adopt 10.6.195.x and 10.6.196.x, ipamclaim 10.6.197.x (and scripts/bench-controller.ts
 * 10.202.0.0/16). Each test gets fresh namespaces: re-creating one that was just
 * deleted waits ~5 s for the namespace controller.
 *
 * The controller tests (controller*.test.ts, machinery in controller-env.ts)
 * run `berth controller`, which acts cluster-wide: they need the control
 * plane to themselves (no other controller, test run or benchmark).
 *
 * BERTH_TEST_TIMING=1 prints each test's time per phase.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as assert from "uvu/assert";
import "./binary-snapshot.ts"; // before berth.ts: BERTH_BIN → a private copy of dist/berth
import { CLAIM_PLURAL, ENDPOINT_PLURAL, labelValue, POOL_GROUP, POOL_KIND, POOL_LABEL, POOL_PLURAL, POOL_VERSION } from "../../../plugin/kube/crd.ts";
import type { ClaimObject, EndpointObject, PoolObject, PoolStatus } from "../../../plugin/kube/kube-api.ts";
import { inBatches } from "../batch.ts";
import { BERTH, cni, cniAsync, type Invocation, type Outcome, podArgs } from "../berth.ts";
import type { FaultProxy } from "../fault-proxy.ts";
import { path } from "../kube/api-paths.ts";
import { kubectl } from "../kube/kubectl.ts";
import type { Stored, StoredPod } from "../kube/stored.ts";
import { describe, type ProcessResult, runProcessSync } from "../run-process.ts";
import { spawnCniSync } from "../spawn-cni.ts";
import { bindPod, bindPodAsync, deleteAll, deletePod, deletePods, markPodReady } from "./kubelet.ts";
import { ADMIN_KUBECONFIG, admin, apply, PLUGIN_KUBECONFIG, waitFor } from "./test-plane.ts";

export {
  ADMIN_KUBECONFIG,
  admin,
  apply,
  bindPod,
  bindPodAsync,
  deletePod,
  deletePods,
  describe,
  inBatches,
  kubectl,
  markPodReady,
  PLUGIN_KUBECONFIG,
  POOL_LABEL,
  path,
  podArgs,
  waitFor,
};

export const BRIDGE_PLUGIN = "/usr/lib/cni/bridge";
/** Label put on every namespace these tests create. */
const NS_LABEL = "berth-test";
const api = admin.sync;

// ---------------------------------------------------------------- processes

export type Run = ProcessResult;

export function run(cmd: string, args: string[], input?: string, env?: Record<string, string>): Run {
  return runProcessSync(cmd, args, env ?? (process.env as Record<string, string>), input);
}

function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${describe(r)}`);
  return r.stdout;
}

// ---------------------------------------------------------------- reading objects (as admin)

/** IPv6 written out uncompressed with "-" for ":" (and IPv4 with "-" for "."), as berth names claims. */
export function claimNameOf(address: string): string {
  if (!address.includes(":")) return `v4-${address.replace(/\./g, "-")}`;
  const [head, tail] = address.includes("::") ? address.split("::") : [address, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return `v6-${groups.map((g) => parseInt(g, 16).toString(16)).join("-")}`;
}

/** The BerthIPClaim of an address, or undefined. */
export function claimOf(address: string): Stored<ClaimObject> | undefined {
  return api.get<Stored<ClaimObject>>(path(CLAIM_PLURAL, { name: claimNameOf(address) }));
}

/** Every BerthIPClaim in the cluster. */
export function listClaims(): Stored<ClaimObject>[] {
  return api.list<Stored<ClaimObject>>(path(CLAIM_PLURAL));
}

/** Every BerthIPClaim counted against `pool` (by label and spec.pool). */
export function claimsOfPool(pool: string): Stored<ClaimObject>[] {
  return api.list<Stored<ClaimObject>>(path(CLAIM_PLURAL), { labelSelector: `${POOL_LABEL}=${labelValue(pool)}` }).filter((c) => c.spec.pool === pool);
}

/** Every BerthIPClaim naming a pod of namespace `ns`. */
export function claimsOfNamespace(ns: string): Stored<ClaimObject>[] {
  return listClaims().filter((c) => c.spec.podNamespace === ns);
}

export function endpointOf(ns: string, name: string): Stored<EndpointObject> | undefined {
  return api.get<Stored<EndpointObject>>(path(ENDPOINT_PLURAL, { ns, name }));
}

export function endpointsIn(ns: string): Stored<EndpointObject>[] {
  return api.list<Stored<EndpointObject>>(path(ENDPOINT_PLURAL, { ns }));
}

/** The SpiderIPPool, or undefined. */
export function getPool(name: string): Stored<PoolObject> | undefined {
  return api.get<Stored<PoolObject>>(path(POOL_PLURAL, { name }));
}

export function listPools(): Stored<PoolObject>[] {
  return api.list<Stored<PoolObject>>(path(POOL_PLURAL));
}

/** The pool's status as the controller wrote it (empty when it has none, or no pool). */
export function poolStatus(pool: string): Partial<PoolStatus> {
  return getPool(pool)?.status ?? {};
}

/** Merge-patches pool NAME (as `kubectl patch sp NAME --type merge -p PATCH`). */
export function patchPool(name: string, patch: unknown): void {
  api.patch(path(POOL_PLURAL, { name }), patch);
}

/** Deletes pool NAME (deletionTimestamp: it goes once its finalizer is off). Throws if it does not exist. */
export function deletePool(name: string): void {
  if (!api.delete(path(POOL_PLURAL, { name }))) throw new Error(`SpiderIPPool ${name} not found`);
}

export { spTable } from "../kube/kubectl.ts";

/** Waits until pool POOL's status shows `allocated` (and returns the status). */
export function waitForAllocated(pool: string, allocated: number, timeoutMs = 1000) {
  return waitFor(
    `SpiderIPPool ${pool} to show ${allocated} allocated (now ${JSON.stringify(poolStatus(pool))})`,
    () => {
      const s = poolStatus(pool);
      return s.allocatedIPCount === allocated ? s : undefined;
    },
    timeoutMs,
    100,
  );
}

export function podOf(ns: string, name: string): StoredPod | undefined {
  return api.get<StoredPod>(path("pods", { ns, name }));
}

/** The UID of pod NS/NAME; throws if it does not exist. */
export function podUid(ns: string, name: string): string {
  const p = podOf(ns, name);
  if (!p) throw new Error(`pod ${ns}/${name} not found`);
  return p.metadata.uid;
}

/** Every pod in NS (terminating ones included). */
export function listPods(ns: string): StoredPod[] {
  return api.list<StoredPod>(path("pods", { ns }));
}

/**
 * Waits for pod NS/NAME to exist, not terminating, with a UID other than
 * `notUid` (a StatefulSet pod recreated by the controller).
 */
export function waitForPod(ns: string, name: string, notUid?: string, timeoutMs = 20_000): Promise<StoredPod> {
  return waitFor(
    `pod ${ns}/${name}${notUid ? ` with a UID other than ${notUid}` : ""}`,
    () => {
      const p = podOf(ns, name);
      return p && !p.metadata.deletionTimestamp && p.metadata.uid !== notUid ? p : undefined;
    },
    timeoutMs,
  );
}

/** Waits until pod NS/NAME is terminating (deletionTimestamp set), e.g. by the StatefulSet controller on scale-down. */
export function waitForTerminating(ns: string, name: string, timeoutMs = 20_000): Promise<StoredPod> {
  return waitFor(
    `pod ${ns}/${name} to be terminating`,
    () => {
      const p = podOf(ns, name);
      return p?.metadata.deletionTimestamp ? p : undefined;
    },
    timeoutMs,
  );
}

/** Sets deletionTimestamp (a plain delete, default grace period), as a user or controller deleting a bound pod does. */
export function startDeletion(ns: string, name: string): void {
  deletePods(ns, [name]);
}

/** Sets spec.replicas of StatefulSet NS/NAME (as `kubectl scale sts`). */
export function scaleStatefulSet(ns: string, name: string, replicas: number): void {
  api.patch(path("statefulsets", { ns, name }), { spec: { replicas } });
}

/** Merge-patches StatefulSet NS/NAME. */
export function patchStatefulSet(ns: string, name: string, patch: unknown): void {
  api.patch(path("statefulsets", { ns, name }), patch);
}

/** Deletes StatefulSet NS/NAME, its pods in the background (bound ones then stay Terminating). Throws if it does not exist. */
export function deleteStatefulSet(ns: string, name: string): void {
  if (!api.delete(path("statefulsets", { ns, name }), { propagationPolicy: "Background" })) throw new Error(`StatefulSet ${ns}/${name} not found`);
}

// ---------------------------------------------------------------- namespaces, pools

/** Creates namespace NS (labelled as a test namespace) and waits for its default ServiceAccount token, so pods are admitted. */
export async function createNamespace(ns: string, annotations: Record<string, string> = {}): Promise<void> {
  await waitFor(
    `stale namespace ${ns} to finish terminating`,
    () => {
      const o = api.get(path("namespaces", { name: ns }));
      return o?.status?.phase !== "Terminating";
    },
    60_000,
    250,
  );
  apply(JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: { [NS_LABEL]: "cluster" }, annotations } }));
  await waitFor(`ServiceAccount ${ns}/default and its token`, () => api.get(path("serviceaccounts", { ns, name: "default" }))?.secrets?.[0]?.name, 30_000);
}

/** Force-deletes every pod and StatefulSet in NS, then the namespace (not waiting for it to go). */
export function removeNamespace(ns: string): void {
  if (!api.get(path("namespaces", { name: ns }))) return;
  deleteAll(ns);
  // Its endpoints now, not when the namespace controller gets to them: the pools' cleanup deletes the claims
  // at once, and an endpoint left listing their addresses meanwhile is what `berth check` reports as a phantom.
  api.delete(path(ENDPOINT_PLURAL, { ns }));
  api.delete(path("namespaces", { name: ns }));
}

/** A SpiderIPPool manifest. */
export function poolManifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, metadata: { name }, spec });
}

/** A ServiceAccount no namespace has: a template naming it makes the StatefulSet controller's pod creations fail. */
export const NO_SUCH_SA = "berth-test-no-such-sa";

/** How a test's StatefulSet differs from the plain one (OrderedReady, RollingUpdate, no annotations). */
export interface StatefulSetShape {
  /** On the StatefulSet itself (ipam.berth.dev/reclaim, say). */
  annotations?: Record<string, string>;
  /** On its pods (the pool annotation, say). */
  templateAnnotations?: Record<string, string>;
  parallel?: boolean;
  /**
   * The test makes the members itself: the template names NO_SUCH_SA (so the
   * StatefulSet controller's creations are refused) and updates are OnDelete
   * (so it deletes no pod either).
   */
  handMadePods?: boolean;
}

/** A StatefulSet object NS/NAME whose pods are labelled app=NAME and run nginx. */
export function statefulSetManifest(ns: string, name: string, replicas: number, shape: StatefulSetShape = {}): Record<string, unknown> {
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name, namespace: ns, ...(shape.annotations ? { annotations: shape.annotations } : {}) },
    spec: {
      serviceName: name,
      replicas,
      ...(shape.parallel || shape.handMadePods ? { podManagementPolicy: "Parallel" } : {}),
      ...(shape.handMadePods ? { updateStrategy: { type: "OnDelete" } } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, ...(shape.templateAnnotations ? { annotations: shape.templateAnnotations } : {}) },
        spec: { ...(shape.handMadePods ? { serviceAccountName: NO_SUCH_SA } : {}), containers: [{ name: "app", image: "nginx" }] },
      },
    },
  };
}

/** Deletes the pools and every claim counted against them. */
export function removePools(pools: string[]): void {
  if (pools.length === 0) return;
  api.delete(path(CLAIM_PLURAL, { query: { labelSelector: `${POOL_LABEL} in (${pools.map(labelValue).join(",")})` } }));
  for (const name of pools) api.delete(path(POOL_PLURAL, { name }));
  // A controller's finalizer would keep a deleted pool (and a later create of the same name would
  // land on the deleting object): no controller runs between tests, so take it off and wait.
  const deadline = Date.now() + 15_000;
  for (const name of pools) {
    while (api.get(path(POOL_PLURAL, { name }))) {
      api.patch(path(POOL_PLURAL, { name }), { metadata: { finalizers: null } }, "merge", [404]);
      if (Date.now() > deadline) throw new Error(`pool ${name} is still there 15 s after its deletion`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

// ---------------------------------------------------------------- network namespaces

export interface NsAddr {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
}

/** Global-scope addresses on `dev` inside network namespace `ns` (`ip -n NS -j addr`). */
export function nsAddrs(ns: string, dev = "eth0"): NsAddr[] {
  const out = JSON.parse(must("ip", ["-n", ns, "-j", "addr", "show", "dev", dev])) as { addr_info: (NsAddr & { scope: string })[] }[];
  assert.is(out.length, 1, `ip -n ${ns} addr show dev ${dev}: expected one link`);
  return out[0].addr_info.filter((a) => a.scope === "global").map((a) => ({ family: a.family, local: a.local, prefixlen: a.prefixlen }));
}

/** "addr/prefix" of every global address on eth0 in the namespace, sorted. */
export function nsCidrs(ns: string): string[] {
  return nsAddrs(ns)
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

// ---------------------------------------------------------------- simulated nodes and the chain

export interface SimNode {
  name: string;
  dataDir: string;
  logFile: string;
}

export interface Attachment {
  node: SimNode;
  conf: Record<string, any>;
  containerId: string;
  netns: string;
  args: string;
  ifname: string;
  /** The bridge's ADD result. */
  result?: any;
}

export interface ScopeOptions {
  /** Short tag of the test file: names the network, the bridge (bc<tag>0) and netns (bc-<tag>-<pid>-<n>). */
  tag: string;
  /** Namespaces this file creates (removed on cleanup, and first if a crashed run left them). */
  namespaces: string[];
  /** SpiderIPPools this file creates (removed with their claims on cleanup, and first if left over). */
  pools: string[];
}

/**
 * One test's resources. `cleanup()` undoes everything: attachments (bridge
 * DEL), network namespaces, the bridge if it has no ports left, Kubernetes
 * namespaces, pools and their claims, extra objects, temp dirs.
 */
export class ClusterScope {
  readonly network: string;
  readonly bridgeName: string;
  private readonly nsPrefix: string;
  private nodes = new Map<string, SimNode>();
  private netnsList = new Set<string>();
  private live = new Map<string, Attachment>();
  private dirs: string[] = [];
  private pluginDir?: string;
  private nsCounter = 0;
  /** Extra cleanup steps (e.g. RBAC objects), run first, last added first. */
  private extra: (() => void)[] = [];

  constructor(readonly opts: ScopeOptions) {
    this.network = `berth-cluster-${opts.tag}`;
    this.bridgeName = `bc${opts.tag}0`.slice(0, 15);
    this.nsPrefix = `bc-${opts.tag}-`;
  }

  /** A simulated node: its own dataDir and logFile, the given nodeName. One per name per scope. */
  node(name: string): SimNode {
    let n = this.nodes.get(name);
    if (!n) {
      const dataDir = mkdtempSync(join(tmpdir(), `berth-cluster-${this.opts.tag}-${name}-`));
      this.dirs.push(dataDir);
      n = { name, dataDir, logFile: join(dataDir, "berth.log") };
      this.nodes.set(name, n);
    }
    return n;
  }

  /** A temp dir removed on cleanup. */
  tempDir(prefix: string): string {
    const d = mkdtempSync(join(tmpdir(), `berth-cluster-${this.opts.tag}-${prefix}-`));
    this.dirs.push(d);
    return d;
  }

  onCleanup(fn: () => void): void {
    this.extra.push(fn);
  }

  /** A kubeconfig file (in a temp dir) that reaches the API server through `proxy` with `token`. */
  proxiedKubeconfig(proxy: FaultProxy, token: string, name = "proxied.kubeconfig"): string {
    const file = join(this.tempDir("kubeconfig"), name);
    writeFileSync(file, proxy.kubeconfig(token), { mode: 0o600 });
    return file;
  }

  /**
   * A kubeconfig for ServiceAccount kube-system/NAME bound to ClusterRole
   * ROLE, with the token kube-apiserver 1.20 puts in the account's secret;
   * the account and binding go on cleanup.
   */
  async accountKubeconfig(name: string, role: string): Promise<string> {
    const sync = admin.sync;
    sync.delete(path("clusterrolebindings", { name }));
    sync.delete(path("serviceaccounts", { ns: "kube-system", name }));
    sync.create(path("serviceaccounts", { ns: "kube-system" }), { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace: "kube-system" } });
    sync.create(path("clusterrolebindings"), {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name, namespace: "kube-system" }],
    });
    this.onCleanup(() => {
      sync.delete(path("clusterrolebindings", { name }));
      sync.delete(path("serviceaccounts", { ns: "kube-system", name }));
    });
    const secret = await waitFor(`the token of ServiceAccount kube-system/${name}`, () => {
      const ref = sync.get(path("serviceaccounts", { ns: "kube-system", name }))?.secrets?.[0]?.name;
      return ref && sync.get(path("secrets", { ns: "kube-system", name: ref }))?.data?.token;
    });
    const token = Buffer.from(secret as string, "base64").toString("utf8");
    const file = join(this.tempDir("kubeconfig"), `${name}.kubeconfig`);
    writeFileSync(file, readFileSync(PLUGIN_KUBECONFIG, "utf8").replace(/token: \S+/, `token: ${token}`), { mode: 0o600 });
    return file;
  }

  /** The ipam block for a simulated node (cluster mode, plugin's least-privilege kubeconfig). */
  ipam(node: SimNode, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { type: "berth", kubeconfig: PLUGIN_KUBECONFIG, nodeName: node.name, dataDir: node.dataDir, logFile: node.logFile, ...extra };
  }

  /** A bridge network configuration delegating to berth on `node`. */
  bridgeConf(node: SimNode, ipamExtra: Record<string, unknown> = {}): Record<string, any> {
    return { cniVersion: "1.0.0", name: this.network, type: "bridge", bridge: this.bridgeName, isGateway: false, ipam: this.ipam(node, ipamExtra) };
  }

  /** A configuration for calling berth directly as the network's only plugin. */
  berthConf(node: SimNode, ipamExtra: Record<string, unknown> = {}): Record<string, any> {
    return { cniVersion: "1.0.0", name: this.network, type: "berth", ipam: this.ipam(node, ipamExtra) };
  }

  /** dist/berth run directly (no interface), synchronously. */
  berth(command: string, node: SimNode, inv: Partial<Invocation> & { ipamExtra?: Record<string, unknown> } = {}): Outcome {
    const { ipamExtra, ...rest } = inv;
    return cni({ command, ifname: "eth0", netns: "/var/run/netns/none", stdin: this.berthConf(node, ipamExtra), ...rest });
  }

  /**
   * An ADD through dist/berth with BERTH_FAULT=`fault`: it SIGKILLs itself at
   * that step (kill-after-pending, kill-after-claim). Asserts it died so,
   * having printed nothing.
   */
  killedAdd(node: SimNode, pod: { ns: string; name: string; uid: string }, containerId: string, fault: string, ipamExtra?: Record<string, unknown>): void {
    const r = this.berth("ADD", node, { containerId, args: podArgs(pod.ns, pod.name, pod.uid), env: { BERTH_FAULT: fault }, ipamExtra });
    assert.equal(
      { signal: r.signal, stdout: r.stdout },
      { signal: "SIGKILL", stdout: "" },
      `the ADD of ${pod.name} with BERTH_FAULT=${fault} dies by SIGKILL: ${r.stderr}`,
    );
  }

  /** dist/berth run directly, without waiting. */
  berthAsync(command: string, node: SimNode, inv: Partial<Invocation> & { ipamExtra?: Record<string, unknown> } = {}): Promise<Outcome> {
    const { ipamExtra, ...rest } = inv;
    return cniAsync({ command, ifname: "eth0", netns: "/var/run/netns/none", stdin: this.berthConf(node, ipamExtra), ...rest });
  }

  private cniPath(): string {
    if (!this.pluginDir) {
      this.pluginDir = mkdtempSync(join(tmpdir(), `berth-cluster-${this.opts.tag}-plugins-`));
      this.dirs.push(this.pluginDir);
      symlinkSync(BERTH, join(this.pluginDir, "berth"));
    }
    return `${this.pluginDir}:/usr/lib/cni`;
  }

  /** A fresh network namespace bc-<tag>-<pid>-<n>, deleted on cleanup. */
  netns(): string {
    const name = `${this.nsPrefix}${process.pid}-${++this.nsCounter}`;
    const r = run("ip", ["netns", "add", name]);
    if (r.status !== 0) throw new Error(`ip netns add ${name} failed (needs root and a usable /var/run/netns): ${describe(r)}`);
    this.netnsList.add(name);
    return name;
  }

  dropNetns(name: string): void {
    if (existsSync(`/var/run/netns/${name}`)) must("ip", ["netns", "del", name]);
    this.netnsList.delete(name);
  }

  private bridgeRun(command: string, a: Attachment): Run & { json: any } {
    const r = spawnCniSync(BRIDGE_PLUGIN, {
      command,
      containerId: a.containerId,
      netns: `/var/run/netns/${a.netns}`,
      ifname: a.ifname,
      path: this.cniPath(),
      args: a.args,
      stdin: a.conf,
    });
    if (r.jsonError) throw new Error(`bridge ${command} printed something that is not JSON: ${describe(r)}`);
    return r;
  }

  /**
   * The kubelet's CNI ADD for pod NS/NAME (UID `uid`) on `node`: bridge with
   * berth as ipam, in a fresh network namespace and a fresh container ID.
   * Asserts success, and that eth0 in the namespace carries exactly the
   * result's addresses.
   */
  attach(node: SimNode, ns: string, name: string, uid: string, ipamExtra: Record<string, unknown> = {}): Attachment {
    const a: Attachment = {
      node,
      conf: this.bridgeConf(node, ipamExtra),
      containerId: randomBytes(32).toString("hex"),
      netns: this.netns(),
      args: podArgs(ns, name, uid),
      ifname: "eth0",
    };
    this.live.set(a.containerId, a); // DEL on cleanup even if ADD half-failed
    const r = this.bridgeRun("ADD", a);
    assert.is(r.status, 0, `bridge ADD of ${ns}/${name} on ${node.name} failed: ${describe(r)}\n${this.logTail(node)}`);
    a.result = r.json;
    const fromResult = (a.result.ips as { address: string }[]).map((ip) => ip.address).sort();
    assert.equal(nsCidrs(a.netns), fromResult, `addresses on eth0 in netns ${a.netns} differ from the bridge result ${JSON.stringify(a.result)}`);
    return a;
  }

  /** The kubelet's CNI DEL of an attachment (bridge → berth); asserts success. Keeps the netns unless `dropNetns`. */
  detach(a: Attachment, dropNetns = true): void {
    const r = this.bridgeRun("DEL", a);
    assert.is(r.status, 0, `bridge DEL of ${a.args} on ${a.node.name} failed: ${describe(r)}\n${this.logTail(a.node)}`);
    this.live.delete(a.containerId);
    if (dropNetns) this.dropNetns(a.netns);
  }

  /** The last lines of every simulated node's berth log (for failure messages). */
  logTail(only?: SimNode, lines = 15): string {
    const out: string[] = [];
    for (const n of only ? [only] : this.nodes.values()) {
      if (!existsSync(n.logFile)) continue;
      const all = readFileSync(n.logFile, "utf8").trimEnd().split("\n");
      out.push(`---- berth log of ${n.name} (${n.logFile}), last ${Math.min(lines, all.length)} lines ----`, ...all.slice(-lines));
    }
    return out.join("\n");
  }

  /** Removes leftovers of an earlier run of this file that died: its namespaces, pools and claims, netns of dead processes. */
  async removeStale(): Promise<void> {
    const list = run("ip", ["-j", "netns", "list"]);
    if (list.status === 0 && list.stdout.trim()) {
      for (const { name } of JSON.parse(list.stdout) as { name: string }[]) {
        const m = new RegExp(`^${this.nsPrefix}(\\d+)-\\d+$`).exec(name);
        if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
        run("ip", ["netns", "del", name]);
      }
    }
    this.removeBridgeIfUnused();
    for (const ns of this.opts.namespaces) removeNamespace(ns);
    removePools(this.opts.pools);
  }

  private removeBridgeIfUnused(): void {
    if (run("ip", ["link", "show", "dev", this.bridgeName]).status !== 0) return;
    const ports = run("ip", ["-j", "link", "show", "master", this.bridgeName]);
    if (ports.status === 0 && ports.stdout.trim() && (JSON.parse(ports.stdout) as unknown[]).length > 0) {
      console.error(`bridge ${this.bridgeName} still has ports; left in place`);
      return;
    }
    run("ip", ["link", "del", this.bridgeName]);
  }

  cleanup(): void {
    const errors: string[] = [];
    const attempt = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    for (const fn of this.extra.reverse()) attempt("extra cleanup", fn);
    this.extra = [];
    // Pods first, so berth's DEL below releases rather than keeps (no StatefulSet left to keep for).
    for (const ns of this.opts.namespaces) attempt(`pods of ${ns}`, () => api.get(path("namespaces", { name: ns })) && deleteAll(ns));
    for (const a of this.live.values()) {
      const r = this.bridgeRun("DEL", a);
      if (r.status !== 0) errors.push(`cleanup DEL ${a.containerId.slice(0, 12)} (${a.args}): ${describe(r)}`);
    }
    this.live.clear();
    for (const n of [...this.netnsList]) attempt(`netns ${n}`, () => this.dropNetns(n));
    attempt(`bridge ${this.bridgeName}`, () => this.removeBridgeIfUnused());
    for (const ns of this.opts.namespaces) attempt(`namespace ${ns}`, () => removeNamespace(ns));
    attempt("pools", () => removePools(this.opts.pools));
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    this.dirs = [];
    if (errors.length) console.error(`cluster test cleanup problems (${this.opts.tag}):\n${errors.join("\n")}`);
  }
}

let preflightError: string | undefined;
let preflightDone = false;

/** Root, the bridge plugin and iproute2: a missing one fails the test, loudly. */
export function preflight(needChain = true): void {
  if (!needChain) return;
  if (!preflightDone) {
    preflightDone = true;
    const problems: string[] = [];
    if (process.getuid?.() !== 0) problems.push(`must run as root (uid is ${process.getuid?.()}): network namespaces and links`);
    if (!existsSync(BRIDGE_PLUGIN)) problems.push(`${BRIDGE_PLUGIN} is missing: apt-get install -y containernetworking-plugins (or run scripts/setup.sh)`);
    if (run("ip", ["-V"]).status !== 0) problems.push("`ip` (iproute2) is not usable: apt-get install -y iproute2");
    if (problems.length) preflightError = problems.join("\n");
  }
  if (preflightError) throw new Error(`cluster test preconditions not met:\n${preflightError}`);
}

/**
 * Runs one test in a fresh scope: stale leftovers removed, namespaces
 * created, `fn` run, everything undone whatever happened. On failure the
 * simulated nodes' berth logs are printed.
 */
export async function withCluster(
  opts: ScopeOptions & { chain?: boolean; nsAnnotations?: Record<string, Record<string, string>> },
  fn: (c: ClusterScope) => void | Promise<void>,
): Promise<void> {
  preflight(opts.chain ?? true);
  const c = new ClusterScope(opts);
  const phases: string[] = [];
  let t = Date.now();
  const phase = (name: string) => {
    phases.push(`${name} ${Date.now() - t} ms`);
    t = Date.now();
  };
  try {
    await c.removeStale();
    phase("stale");
    for (const ns of opts.namespaces) await createNamespace(ns, opts.nsAnnotations?.[ns]);
    phase("namespaces");
    await fn(c);
    phase("test");
  } catch (err) {
    const logs = c.logTail(undefined, 30);
    if (logs) console.error(`\n[${opts.tag}] test failed; berth logs:\n${logs}\n`);
    throw err;
  } finally {
    c.cleanup();
    phase("cleanup");
    // BERTH_TEST_TIMING=1: where each test's time went.
    if (process.env.BERTH_TEST_TIMING) console.error(`[${opts.tag}] ${phases.join(", ")}`);
  }
}

// ---------------------------------------------------------------- StatefulSet stepping

/** A pod incarnation running on a simulated node with its sandbox. */
export interface Running {
  name: string;
  uid: string;
  node: SimNode;
  attachment: Attachment;
  /** The address (no prefix) of each family the ADD returned. */
  v4?: string;
  v6?: string;
}

function addressesOf(result: any): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  for (const ip of result.ips as { address: string }[]) {
    const a = ip.address.split("/")[0];
    if (a.includes(":")) out.v6 = a;
    else out.v4 = a;
  }
  return out;
}

/**
 * Scheduler + kubelet for one pod: waits for NS/NAME (a new incarnation if
 * `notUid`), binds it to `node`, runs CNI ADD through bridge in a new netns,
 * checks the address inside it, and marks the pod Running/Ready with it.
 */
export async function startPod(
  c: ClusterScope,
  ns: string,
  name: string,
  node: SimNode,
  notUid?: string,
  ipamExtra: Record<string, unknown> = {},
): Promise<Running> {
  const pod = await waitForPod(ns, name, notUid);
  bindPod(ns, name, node.name);
  const attachment = c.attach(node, ns, name, pod.metadata.uid, ipamExtra);
  const got = addressesOf(attachment.result);
  markPodReady(ns, name, got.v4 ?? got.v6!);
  return { name, uid: pod.metadata.uid, node, attachment, ...got };
}

/**
 * The kubelet's side of a pod deletion: deletionTimestamp set (unless
 * already), CNI DEL through bridge, netns removed, then the final delete.
 * `between` runs after the DEL and before the final delete.
 */
export function stopPod(c: ClusterScope, ns: string, p: Running, between?: () => void): void {
  if (!podOf(ns, p.name)?.metadata.deletionTimestamp) startDeletion(ns, p.name);
  c.detach(p.attachment);
  between?.();
  deletePod(ns, p.name);
}
