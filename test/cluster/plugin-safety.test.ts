/**
 * The plugin's side of cluster mode under faults (issue "safe under faults"):
 * lost responses, slow writes, failed ADDs and their DELs, DEL without the
 * network, static pods, two interfaces, node identity, TLS and logs. Each
 * test shows one window closed, mostly through the TLS fault proxy
 * (test/support/fault-proxy.ts) between dist/berth and the API server.
 *
 * Address range: 10.6.190.x (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster plugin-safety.test.ts
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BERTH } from "../support/berth.ts";
import {
  admin,
  apply,
  bindPod,
  ClusterScope,
  claimOf,
  createNamespace,
  deletePods,
  endpointOf,
  PLUGIN_KUBECONFIG,
  path,
  podArgs,
  podUid,
  poolManifest,
  type SimNode,
  scaleStatefulSet,
  waitFor,
  waitForPod,
} from "../support/cluster/cluster-env.ts";
import { CONTROLLER_KUBECONFIG, ControllerProc, startController, stopAllControllers } from "../support/cluster/controller-env.ts";
import { APISERVER, TESTENV_DIR } from "../support/cluster/test-plane.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { tokenOf } from "../support/kube/kubeconfig-token.ts";
import { logEntries, logged } from "../support/log-lines.ts";

const NS = "berth-psafe";
const P = {
  one: "psafe-one", // 10.6.190.1
  two: "psafe-two", // 10.6.190.11-12
  sts: "psafe-sts", // 10.6.190.21
  ord: "psafe-ord", // 10.6.190.31-35
  node2: "psafe-node2", // 10.6.190.41-42, node2 only
  aff: "psafe-aff", // 10.6.190.51-52, nodeAffinity
  gc: "psafe-gc", // 10.6.190.61-62
  race: "psafe-race", // 10.6.190.71-72
  rel: "psafe-rel", // 10.6.190.81
  served: "psafe-served", // 10.6.190.91
  late: "psafe-late", // 10.6.190.95
} as const;

const S = suite("cluster: plugin safety");
let scope: ClusterScope;
let node1: SimNode;
let node2: SimNode;
let token: string;

S.before(async () => {
  scope = new ClusterScope({ tag: "psafe", namespaces: [NS], pools: Object.values(P) });
  try {
    await scope.removeStale();
    await createNamespace(NS);
    node1 = scope.node("node1");
    node2 = scope.node("node2");
    token = tokenOf(PLUGIN_KUBECONFIG);
    apply(poolManifest(P.one, { subnet: "10.6.0.0/16", ips: ["10.6.190.1"] }));
    apply(poolManifest(P.two, { subnet: "10.6.0.0/16", ips: ["10.6.190.11-10.6.190.12"] }));
    apply(poolManifest(P.sts, { subnet: "10.6.0.0/16", ips: ["10.6.190.21"] }));
    apply(poolManifest(P.ord, { subnet: "10.6.0.0/16", ips: ["10.6.190.31-10.6.190.35"] }));
    apply(poolManifest(P.node2, { subnet: "10.6.0.0/16", ips: ["10.6.190.41-10.6.190.42"], nodeName: ["node2"] }));
    apply(
      poolManifest(P.aff, { subnet: "10.6.0.0/16", ips: ["10.6.190.51-10.6.190.52"], nodeAffinity: { matchLabels: { "kubernetes.io/hostname": "node1" } } }),
    );
    apply(poolManifest(P.gc, { subnet: "10.6.0.0/16", ips: ["10.6.190.61-10.6.190.62"] }));
    apply(poolManifest(P.race, { subnet: "10.6.0.0/16", ips: ["10.6.190.71-10.6.190.72"] }));
    apply(poolManifest(P.rel, { subnet: "10.6.0.0/16", ips: ["10.6.190.81"] }));
    apply(poolManifest(P.served, { subnet: "10.6.0.0/16", ips: ["10.6.190.91"] }));
    apply(poolManifest(P.late, { subnet: "10.6.0.0/16", ips: ["10.6.190.95"] }));
  } catch (err) {
    scope.cleanup();
    throw err;
  }
});

S.after(async () => {
  await stopAllControllers();
  scope.cleanup();
});

const ippool = (v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });
let counter = 0;

/** A plain pod on `node` naming pools (or other annotations); returns name and UID. */
function plainPod(annotations: Record<string, string>, node = "node1", prefix = "p"): { name: string; uid: string } {
  const name = `${prefix}-${++counter}`;
  // Scheduled at creation (spec.nodeName), as a mirror pod must be.
  apply(
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: NS, annotations },
      spec: { nodeName: node, containers: [{ name: "app", image: "nginx" }] },
    }),
  );
  return { name, uid: podUid(NS, name) };
}

function statefulSet(name: string, replicas: number, templateAnnotations: Record<string, string>): void {
  apply(
    JSON.stringify({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name, namespace: NS },
      spec: {
        serviceName: name,
        replicas,
        podManagementPolicy: "Parallel",
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name }, annotations: templateAnnotations }, spec: { containers: [{ name: "app", image: "nginx" }] } },
      },
    }),
  );
}

const cid = () => randomBytes(32).toString("hex");
const addr = (o: { json: any }) => (o.json.ips[0].address as string).split("/")[0];
const holderOf = (address: string) => {
  const c = claimOf(address);
  return c ? `${c.spec.podNamespace}/${c.spec.podName}` : undefined;
};

/** A kubeconfig file that reaches the API server through `proxy`, as the plugin. */
const viaProxy = (proxy: FaultProxy, name: string) => scope.proxiedKubeconfig(proxy, token, name);

async function withProxy(fn: (proxy: FaultProxy) => Promise<void>, untrusted = false): Promise<void> {
  const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki"), untrusted });
  try {
    await fn(proxy);
  } finally {
    await proxy.close();
  }
}

// ------------------------------------------------------------------ window 1

S("a slow endpoint write: the controller leaves the claim alone until the ADD's recorded deadline; nobody else gets the address", () =>
  withProxy(async (proxy) => {
    const ctl = await startController({ identity: "psafe-ctl", addTimeoutSeconds: 2, resyncSeconds: 1 });
    try {
      const kubeconfig = viaProxy(proxy, "slow-endpoint");
      proxy.rule({ method: "POST", path: /\/berthendpoints/, action: "delay", ms: 6000, times: 1 });
      const a = plainPod(ippool([P.one]));
      const slow = scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, a.name, a.uid), ipamExtra: { kubeconfig, timeoutSeconds: 15 } });
      await waitFor("a's claim", () => claimOf("10.6.190.1"));
      await new Promise((r) => setTimeout(r, 4000)); // past the controller's --add-timeout-seconds, before the endpoint lands
      const b = plainPod(ippool([P.one]), "node2");
      const other = await scope.berthAsync("ADD", node2, { containerId: cid(), args: podArgs(NS, b.name, b.uid) });
      const first = await slow;
      assert.is(first.status, 0, `the slow ADD succeeds: ${first.stdout}\n${scope.logTail(node1)}`);
      assert.is(addr(first), "10.6.190.1");
      assert.is(other.status, 1, `the second pod must not get the same address: ${other.stdout}\n${ctl.logTail()}`);
      assert.is(other.json.code, 100);
      assert.is(holderOf("10.6.190.1"), `${NS}/${a.name}`);
      assert.equal(
        ctl.releases((r) => r.address === "10.6.190.1"),
        [],
        "the controller released nothing",
      );
      assert.ok(claimOf("10.6.190.1")!.spec.addDeadlineSeconds! >= 15, "the claim records the ADD's deadline");
      deletePods(NS, [a.name, b.name], { force: true });
      await waitFor("a's claim released by the controller", () => !claimOf("10.6.190.1"), 15_000);
    } finally {
      await stopAllControllers();
    }
  }),
);

// A node booting a hundred pods: the ADD waits for a CPU, not for the API server. Once its address is taken,
// running past timeoutSeconds must not roll back what the API server accepted (the retry would redo it all).
S("an ADD past its budget with every address taken finishes (re-checking its claim) instead of undoing; one that has not got them gives up with 11", () =>
  withProxy(async (proxy) => {
    const kubeconfig = viaProxy(proxy, "late");
    const p = plainPod(ippool([P.late]));
    // Each request answers within its own limit (the budget's 3 s), but the claim and the endpoint writes take 2 s
    // each: the budget runs out during the endpoint write, after the claim was taken.
    proxy.rule({ method: "POST", path: /\/berthipclaims/, action: "delay", ms: 2000, times: 1 });
    proxy.rule({ method: "POST", path: /\/berthendpoints/, action: "delay", ms: 2000, times: 1 });
    const t0 = Date.now();
    const sandbox = cid();
    const late = await scope.berthAsync("ADD", node1, { containerId: sandbox, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig, timeoutSeconds: 3 } });
    assert.is(late.status, 0, `finished late instead of undoing: ${late.stdout}\n${scope.logTail(node1)}`);
    assert.ok(Date.now() - t0 >= 4000, "it did run past its budget");
    assert.is(addr(late), "10.6.190.95");
    assert.is(holderOf("10.6.190.95"), `${NS}/${p.name}`, "the claim stays");
    assert.ok(
      endpointOf(NS, p.name)?.spec.ips.some((i) => i.ipv4?.startsWith("10.6.190.95/")),
      "the endpoint binds it",
    );
    assert.ok(
      proxy.log.some((r) => r.method === "GET" && /\/berthipclaims\/v4-10-6-190-95/.test(r.path)),
      "the late ADD read its claim again before answering",
    );
    proxy.clear();
    deletePods(NS, [p.name], { force: true });
    const del = await scope.berthAsync("DEL", node1, { containerId: sandbox, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(del.status, 0, del.stdout);

    // Before any address is taken the budget still ends the ADD: pod and pool reads take 1.5 s each of its 2 s.
    const q = plainPod(ippool([P.late]));
    proxy.rule({ method: "GET", path: /\/pods\//, action: "delay", ms: 1500 });
    proxy.rule({ method: "GET", path: /\/spiderippools\//, action: "delay", ms: 1500 });
    const slow = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, q.name, q.uid), ipamExtra: { kubeconfig, timeoutSeconds: 2 } });
    assert.is(slow.json?.code, 11, slow.stdout);
    assert.match(slow.json.msg, "gave up after 2 s");
    assert.is(holderOf("10.6.190.95"), undefined, "nothing taken");
  }),
);

// ------------------------------------------------------------------ window 3

S("a member's failed ADD keeps its binding: the claim goes back as it was, and the failed sandbox's DEL frees nothing", () =>
  withProxy(async (proxy) => {
    statefulSet("fail", 1, ippool([P.sts]));
    const pod = await waitForPod(NS, "fail-0");
    bindPod(NS, "fail-0", "node1");
    const first = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, "fail-0", pod.metadata.uid) });
    assert.is(first.status, 0, first.stdout);
    const address = addr(first);
    const before = claimOf(address)!;
    // A new sandbox: the claim is re-taken (updated), then the endpoint write is cut off.
    const kubeconfig = viaProxy(proxy, "fail-endpoint");
    // Every try is cut off (a client may resend an idempotent PUT on a fresh connection).
    proxy.rule({ path: /\/berthendpoints\/fail-0/, method: "PUT", action: "reset" });
    const sandbox = cid();
    const failed = await scope.berthAsync("ADD", node1, { containerId: sandbox, args: podArgs(NS, "fail-0", pod.metadata.uid), ipamExtra: { kubeconfig } });
    assert.is(failed.status, 1, `the ADD fails: ${failed.stdout}`);
    assert.is(failed.json.code, 11);
    assert.ok(proxy.faults().length >= 1, "the endpoint write was cut off");
    proxy.clear();
    assert.is(claimOf(address)!.spec.containerID, before.spec.containerID, "the claim was given back as it was");
    const delFailed = await scope.berthAsync("DEL", node1, { containerId: sandbox, args: podArgs(NS, "fail-0", pod.metadata.uid) });
    assert.is(delFailed.status, 0, delFailed.stdout);
    assert.is(holderOf(address), `${NS}/fail-0`, "the failed sandbox's DEL kept the member's address");
    const intruder = plainPod(ippool([P.sts]), "node2");
    const taken = await scope.berthAsync("ADD", node2, { containerId: cid(), args: podArgs(NS, intruder.name, intruder.uid) });
    assert.is(taken.json?.code, 100, `no one else gets it: ${taken.stdout}`);
    const again = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, "fail-0", pod.metadata.uid) });
    assert.is(again.status, 0, again.stdout);
    assert.is(addr(again), address, "the member comes back on its address");
  }),
);

// ------------------------------------------------------------------ window 4

S("an endpoint write whose answer is lost is undone with the claims; a pod whose endpoint names someone else's address takes a new one", () =>
  withProxy(async (proxy) => {
    const kubeconfig = viaProxy(proxy, "lost-endpoint");
    proxy.rule({ method: "POST", path: /\/berthendpoints/, action: "drop-response", times: 1 });
    const lost = plainPod(ippool([P.two]));
    const r = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, lost.name, lost.uid), ipamExtra: { kubeconfig } });
    assert.is(r.status, 1, r.stdout);
    assert.equal(
      proxy.faults().map((f) => f.status),
      [201],
      "the server created the endpoint; the plugin never heard",
    );
    assert.is(endpointOf(NS, lost.name), undefined, "the undo removed the endpoint the server did write");
    assert.is(holderOf("10.6.190.11") ?? holderOf("10.6.190.12"), undefined, "and the claim");

    // An endpoint that names an address now held by another pod (e.g. left by an older berth).
    const p = plainPod(ippool([P.two]));
    const first = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid) });
    const x = addr(first);
    const claim = claimOf(x)!;
    admin.sync.delete(path("berthipclaims", { name: claim.metadata.name }));
    const q = plainPod(ippool([P.two]));
    // Someone else has it now (as if another pod's ADD had taken the freed address).
    admin.sync.create(path("berthipclaims"), {
      apiVersion: "ipam.berth.dev/v1alpha1",
      kind: "BerthIPClaim",
      metadata: { name: claim.metadata.name, labels: claim.metadata.labels },
      spec: { ...claim.spec, podName: q.name, podUID: q.uid, containerID: "q-sandbox" },
    });
    assert.is(holderOf(x), `${NS}/${q.name}`, "another pod holds p's old address");
    const restart = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid) });
    assert.is(restart.status, 0, `p's next sandbox gets an address instead of 102: ${restart.stdout}`);
    assert.is.not(addr(restart), x);
  }),
);

// ------------------------------------------------------------------ window 9

S("a DEL's claim delete carries the resourceVersion it judged: a claim re-taken meanwhile by the member's new sandbox stays", () =>
  withProxy(async (proxy) => {
    statefulSet("race", 2, ippool([P.race]));
    const w1 = await waitForPod(NS, "race-1");
    bindPod(NS, "race-1", "node1");
    const oldSandbox = cid();
    const a = await scope.berthAsync("ADD", node1, { containerId: oldSandbox, args: podArgs(NS, "race-1", w1.metadata.uid) });
    assert.is(a.status, 0, a.stdout);
    const address = addr(a);
    scaleStatefulSet(NS, "race", 1);
    await waitFor("race-1 terminating", () => admin.sync.get(path("pods", { ns: NS, name: "race-1" }))?.metadata?.deletionTimestamp);
    const kubeconfig = viaProxy(proxy, "slow-delete");
    proxy.rule({ method: "DELETE", path: /\/berthipclaims\//, action: "delay", ms: 6000, times: 1 });
    const slowDel = scope.berthAsync("DEL", node1, { containerId: oldSandbox, args: podArgs(NS, "race-1", w1.metadata.uid), ipamExtra: { kubeconfig } });
    await waitFor("the DEL's delete to reach the proxy", () => proxy.faults().length === 1);
    // Scaled back up before the delete lands: the new race-1 re-takes its address.
    deletePods(NS, ["race-1"], { force: true });
    scaleStatefulSet(NS, "race", 2);
    const w1b = await waitForPod(NS, "race-1", w1.metadata.uid);
    bindPod(NS, "race-1", "node2");
    const b = await scope.berthAsync("ADD", node2, { containerId: cid(), args: podArgs(NS, "race-1", w1b.metadata.uid) });
    assert.is(b.status, 0, b.stdout);
    assert.is(addr(b), address);
    const d = await slowDel;
    assert.is(d.status, 0, d.stdout);
    assert.is(claimOf(address)?.spec.podUID, w1b.metadata.uid, "the new sandbox's claim survived the old DEL");
  }),
);

S("the controller strips a released address only from the endpoint of the pod incarnation it judged, not from a new one that took the address again", () =>
  withProxy(async (proxy) => {
    const kubeconfig = scope.proxiedKubeconfig(proxy, tokenOf(CONTROLLER_KUBECONFIG), "controller");
    const first = plainPod(ippool([P.rel]), "node1", "rel");
    const a = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, first.name, first.uid) });
    assert.is(addr(a), "10.6.190.81");
    // The controller's claim delete reaches the server at once; it hears back 4 s later.
    proxy.rule({ method: "DELETE", path: /\/berthipclaims\//, action: "delay-response", ms: 4000, times: 1 });
    const ctl = await ControllerProc.start({ bin: BERTH, kubeconfig, identity: "psafe-rel", resyncSeconds: 60, addTimeoutSeconds: 30 });
    try {
      await waitFor("the controller to lead", () => ctl.log().includes('"became leader"'), 20_000);
      deletePods(NS, [first.name], { force: true }); // its node is gone: no DEL
      await waitFor("the claim deleted by the controller", () => !claimOf("10.6.190.81"), 20_000);
      // A new pod of the same name (another UID) takes the address again before the controller hears back.
      apply(
        JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: first.name, namespace: NS, annotations: ippool([P.rel]) },
          spec: { nodeName: "node2", containers: [{ name: "app", image: "nginx" }] },
        }),
      );
      const uid2 = podUid(NS, first.name);
      const b = await scope.berthAsync("ADD", node2, { containerId: cid(), args: podArgs(NS, first.name, uid2) });
      assert.is(b.status, 0, b.stdout);
      assert.is(addr(b), "10.6.190.81");
      await waitFor("the controller's release line", () => ctl.releases((r) => r.address === "10.6.190.81").length === 1, 20_000);
      await new Promise((r) => setTimeout(r, 1000));
      const ep = endpointOf(NS, first.name);
      assert.is(ep?.spec.podUID, uid2);
      assert.equal(
        ep?.spec.ips.map((i: { ipv4?: string }) => i.ipv4),
        ["10.6.190.81/16"],
        "the new incarnation's binding is intact",
      );
      assert.is(claimOf("10.6.190.81")?.spec.podUID, uid2);
    } finally {
      await ctl.stop();
    }
  }),
);

// ------------------------------------------------------------------ window 10

S("DEL never blocks teardown: nothing held here → success without kubeconfig or API server; something held and no API server → 11", () =>
  withProxy(async (proxy) => {
    const p = plainPod(ippool([P.gc]));
    const nothing = await scope.berthAsync("DEL", node1, {
      containerId: cid(),
      args: podArgs(NS, p.name, p.uid),
      ipamExtra: { kubeconfig: "/tmp/berth-no-such-kubeconfig" },
    });
    assert.is(nothing.status, 0, `no kubeconfig, nothing held: ${nothing.stdout}`);
    const kubeconfig = viaProxy(proxy, "down");
    const held = cid();
    const a = await scope.berthAsync("ADD", node1, { containerId: held, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(a.status, 0, a.stdout);
    proxy.rule({ path: /./, action: "reset" });
    const other = await scope.berthAsync("DEL", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(other.status, 0, `API server down, nothing held for this container: ${other.stdout}`);
    const blocked = await scope.berthAsync("DEL", node1, { containerId: held, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(blocked.json?.code, 11, `held and unreachable: ${blocked.stdout}`);
    proxy.clear();
    deletePods(NS, [p.name], { force: true });
    const done = await scope.berthAsync("DEL", node1, { containerId: held, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(done.status, 0, done.stdout);
    assert.is(holderOf(addr(a)), undefined, "released once reachable");
  }),
);

// ------------------------------------------------------------------ window 8

S("GC leaves an ADD in flight alone: a lease younger than its ADD's deadline is kept, an older one of a gone pod is released", async () => {
  await stopAllControllers(); // only GC may release here
  const p = plainPod(ippool([P.gc]));
  // timeoutSeconds 1: the claim's deadline is 1 + 1 + 5 = 7 s.
  const a = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid), ipamExtra: { timeoutSeconds: 1 } });
  assert.is(a.status, 0, a.stdout);
  deletePods(NS, [p.name], { force: true }); // gone: nothing keeps the address but the ADD's youth
  const conf = { ...scope.berthConf(node1, { timeoutSeconds: 1 }), cniVersion: "1.1.0", "cni.dev/valid-attachments": [] };
  const gc = scope.berth("GC", node1, { stdin: conf } as never);
  assert.is(gc.status, 0, gc.stdout);
  assert.is(holderOf(addr(a)), `${NS}/${p.name}`, "the runtime's list cannot show an ADD that has not answered yet: kept");
  await new Promise((r) => setTimeout(r, 7500));
  const later = scope.berth("GC", node1, { stdin: conf } as never);
  assert.is(later.status, 0, later.stdout);
  assert.is(holderOf(addr(a)), undefined, "past the deadline GC releases it");
});

// ------------------------------------------------------------------ window 11

S("a static pod: CNI_ARGS carries the kubelet's config hash, the mirror pod's annotation matches it → served", () => {
  const hash = `cfg${randomBytes(8).toString("hex")}`;
  const p = plainPod({ ...ippool([P.gc]), "kubernetes.io/config.mirror": hash }, "node1", "static");
  const o = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, hash) });
  assert.is(o.status, 0, `static pod: ${o.stdout}`);
  const wrong = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, "some-other-uid") });
  assert.is(wrong.json?.code, 106, "any other UID is still another pod");
});

// ------------------------------------------------------------------ window 12

S("ordinal-ordered addresses on two interfaces: the second interface gets 102 naming the first, never the same address", async () => {
  statefulSet("ord", 1, { ...ippool([P.ord]), "ipam.berth.dev/ordinal-ips": "true" });
  const pod = await waitForPod(NS, "ord-0");
  bindPod(NS, "ord-0", "node1");
  const sandbox = cid();
  const eth0 = scope.berth("ADD", node1, { containerId: sandbox, ifname: "eth0", args: podArgs(NS, "ord-0", pod.metadata.uid) });
  assert.is(eth0.status, 0, eth0.stdout);
  assert.is(addr(eth0), "10.6.190.31");
  const net1 = scope.berth("ADD", node1, { containerId: sandbox, ifname: "net1", args: podArgs(NS, "ord-0", pod.metadata.uid) });
  assert.is(net1.json?.code, 102, `second interface: ${net1.stdout}`);
  assert.match(net1.json.msg, "interface eth0");
  assert.is(claimOf("10.6.190.31")?.spec.interface, "eth0");
});

// ------------------------------------------------------------------ window 13

S("without nodeName the plugin uses the pod's node; a nodeAffinity pool on a node that cannot be read is an error, not 'no labels'", () => {
  const onNode2 = plainPod(ippool([P.node2]), "node2");
  const o = scope.berth("ADD", node2, { containerId: cid(), args: podArgs(NS, onNode2.name, onNode2.uid), ipamExtra: { nodeName: undefined } });
  assert.is(o.status, 0, `node2's pool serves the pod scheduled to node2: ${o.stdout}`);
  const ghost = plainPod(ippool([P.aff]), "ghost-node");
  const g = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, ghost.name, ghost.uid), ipamExtra: { nodeName: undefined } });
  assert.is(g.json?.code, 106, `the node cannot be read: ${g.stdout}`);
  assert.match(g.json.msg, "node ghost-node not found");
  assert.match(g.json.msg, P.aff);
});

// ------------------------------------------------------------------ window 14

S("TLS: a server that cannot prove itself with the kubeconfig's CA is refused, nothing claimed; insecure-skip-tls-verify is refused", () =>
  withProxy(async (proxy) => {
    const p = plainPod(ippool([P.gc]));
    const before = holderOf("10.6.190.61") ?? holderOf("10.6.190.62");
    const o = await scope.berthAsync("ADD", node1, {
      containerId: cid(),
      args: podArgs(NS, p.name, p.uid),
      ipamExtra: { kubeconfig: viaProxy(proxy, "impostor") },
    });
    assert.is(o.json?.code, 11, o.stdout);
    assert.equal(
      proxy.log.filter((r) => r.status !== undefined),
      [],
      "no request went through",
    );
    assert.is(holderOf("10.6.190.61") ?? holderOf("10.6.190.62"), before, "nothing claimed");
    const insecure = join(scope.tempDir("kubeconfig"), "insecure");
    writeFileSync(insecure, readFileSync(PLUGIN_KUBECONFIG, "utf8").replace(/certificate-authority(-data)?: \S+/, "insecure-skip-tls-verify: true"), {
      mode: 0o600,
    });
    const i = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig: insecure } });
    assert.is(i.json?.code, 7, i.stdout);
    assert.match(i.json.msg, "insecure-skip-tls-verify");
  }, true),
);

S("log lines are JSON: a pool name with a newline in an annotation cannot forge a line", () => {
  const forged = 'nope\n{"time":"2026-01-01T00:00:00.000Z","level":"info","msg":"address released","address":"10.6.190.1"}';
  const p = plainPod({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [forged] }) });
  const o = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid) });
  assert.is(o.status, 1, o.stdout);
  const entries = logEntries(readFileSync(node1.logFile, "utf8"));
  assert.equal(logged(readFileSync(node1.logFile, "utf8"), "address released", { address: "10.6.190.1" }), [], "no forged release line");
  assert.ok(
    entries.some((e) => String(e.msg).includes(forged) || JSON.stringify(e).includes("nope\\n")),
    "the real line carries the name, escaped",
  );
});

// A restarting API server serves built-in kinds before it has registered the CRDs again; until then a custom
// resource's path answers 404 without naming an object. Found by the restart test: ADDs failed with 106.
S("an API server that does not serve the custom kinds yet: ADD and DEL answer 11 (try again), not 'not found', and change nothing", () =>
  withProxy(async (proxy) => {
    const kubeconfig = viaProxy(proxy, "crds-not-served");
    const notServed = {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      message: "the server could not find the requested resource",
      reason: "NotFound",
      details: {},
      code: 404,
    };
    const p = plainPod(ippool([P.served]));
    proxy.rule({ method: "GET", path: /\/spiderippools\//, action: "answer", status: 404, body: notServed });
    const add = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(add.json?.code, 11, `try again, not 106: ${add.stdout}`);
    assert.match(add.json.msg, "does not serve this kind");
    assert.ok(proxy.faults().length >= 1, "the pool read met the fault");
    assert.is(holderOf("10.6.190.91"), undefined, "nothing claimed");
    proxy.clear();

    const held = cid();
    const ok = await scope.berthAsync("ADD", node1, { containerId: held, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(ok.status, 0, ok.stdout);
    deletePods(NS, [p.name], { force: true });
    // The claims' kind answers "page not found" (as a server with no such group at all): the DEL must not take that for "already gone".
    proxy.rule({ path: /\/berthipclaims/, action: "answer", status: 404, body: "404 page not found\n" });
    const del = await scope.berthAsync("DEL", node1, { containerId: held, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(del.json?.code, 11, `held and not served: ${del.stdout}`);
    assert.is(holderOf("10.6.190.91"), `${NS}/${p.name}`, "the claim is still there");
    proxy.clear();
    const done = await scope.berthAsync("DEL", node1, { containerId: held, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(done.status, 0, done.stdout);
    assert.is(holderOf("10.6.190.91"), undefined, "released once served");
  }),
);

S.run();
