/**
 * Safety round 2 (issue 17), the controller's side: an address goes to
 * another pod only when its holder can no longer be using it (its DEL ran,
 * its pod object is gone, or, for a static pod, its node is gone). Each test
 * is one window that berth 0.4 left open, through dist/berth and a real
 * `berth controller` on the test control plane:
 *
 * - window 1: a namespace deleted while its pods are in their grace period
 *   (its BerthEndpoints go at once); `kubectl delete bep` under running pods;
 *   the BerthEndpoint CRD deleted and re-created;
 * - window 2: a static pod's mirror deleted and re-created by the kubelet;
 * - window 4: a pod stuck Terminating past its grace period on a Ready node,
 *   a Succeeded pod on a kubelet that reports it before the sandbox stops;
 * - window 7: the controller's endpoint write failing after a release (a
 *   phantom binding), and the member coming back;
 * - window 11: API servers whose clocks differ by a minute.
 *
 * Run with BERTH_BIN=<a berth 0.4.0 binary> to see each fail.
 *
 * Address range: 10.6.191.1-127 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster hold-safety.test.ts
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BERTH_API_VERSION, BERTH_GROUP, CLAIM_KIND, labelValue, POOL_LABEL } from "../../plugin/kube/crd.ts";
import {
  admin,
  apply,
  bindPod,
  type ClusterScope,
  claimNameOf,
  claimOf,
  deletePod,
  deletePods,
  endpointOf,
  patchPool,
  path,
  podArgs,
  podOf,
  podUid,
  poolManifest,
  type SimNode,
  scaleStatefulSet,
  statefulSetManifest,
  waitFor,
  waitForPod,
} from "../support/cluster/cluster-env.ts";
import {
  type ControllerProc,
  controllerToken,
  disconnectNode,
  events,
  type Held,
  ippool,
  plainPod,
  sleep,
  startController,
  waitForAsync,
  waitReleased,
  withControllers,
} from "../support/cluster/controller-env.ts";
import { APISERVER, TESTENV_DIR } from "../support/cluster/test-plane.ts";
import { FaultProxy } from "../support/fault-proxy.ts";

const S = suite("cluster: addresses held until their holder is gone");

/** The network's ADD budget in these tests: its claims' ADD window is then 9 s (claimDeadlineSeconds). */
const TIMEOUT = { timeoutSeconds: 2 };
const WINDOW_MS = 9000;

/** The kubelet's ADD through dist/berth, with a 2 s budget (a 9 s ADD window); asserts success. */
function addShort(c: ClusterScope, node: SimNode, ns: string, name: string, uid: string, containerId = randomBytes(32).toString("hex")): Held {
  const o = c.berth("ADD", node, { containerId, args: podArgs(ns, name, uid), ipamExtra: TIMEOUT });
  assert.is(o.status, 0, `ADD of ${ns}/${name} on ${node.name}: ${o.stdout} ${o.stderr}\n${c.logTail(node)}`);
  return { ns, name, uid, node, containerId, address: o.json.ips[0].address.split("/")[0] };
}

function addresses(ep: ReturnType<typeof endpointOf>): string[] {
  return (ep?.spec.ips ?? [])
    .flatMap((i) => [i.ipv4, i.ipv6])
    .filter((a): a is string => !!a)
    .map((a) => a.split("/")[0]);
}

function statefulSet(ns: string, name: string, replicas: number, pool: string): void {
  apply(JSON.stringify(statefulSetManifest(ns, name, replicas, { parallel: true, templateAnnotations: ippool(pool) })));
}

/** A member the StatefulSet controller made, bound to `node` (the scheduler's part), and its ADD. */
async function member(c: ClusterScope, node: SimNode, ns: string, name: string, notUid?: string): Promise<Held> {
  const pod = await waitForPod(ns, name, notUid);
  if (!pod.spec.nodeName) bindPod(ns, name, node.name);
  return addShort(c, node, ns, name, pod.metadata.uid);
}

/** A Node object of the test's own (no heartbeat), with the kubelet and runtime versions given. */
function makeNode(name: string, kubeletVersion = "v1.20.2", containerRuntimeVersion = "containerd://1.6.20"): void {
  apply(JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } } }));
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  admin.sync.patch(
    path("nodes", { name, sub: "status" }),
    {
      status: {
        conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "berth test", lastHeartbeatTime: now, lastTransitionTime: now }],
        nodeInfo: { kubeletVersion, containerRuntimeVersion },
      },
    },
    "strategic",
  );
}

/** Never throws on the answer's status (it runs in `finally`). */
function deleteNode(name: string): Promise<unknown> {
  return admin.request("DELETE", path("nodes", { name }));
}

/** The pod's phase, as the kubelet would write it (pods/status). */
async function setPhase(ns: string, name: string, phase: "Succeeded" | "Failed"): Promise<void> {
  await admin.patch(path("pods", { ns, name, sub: "status" }), { status: { phase } });
}

/** Waits for a Warning Event AddressHeld on the BerthIPClaim of `address` as it is now (default namespace). */
async function heldEvent(address: string): Promise<void> {
  const uid = claimOf(address)!.metadata.uid;
  await waitFor(
    `an AddressHeld Event on the BerthIPClaim of ${address}`,
    () => events("default", "AddressHeld").some((e) => e.involvedObject.kind === "BerthIPClaim" && e.involvedObject.uid === uid && e.type === "Warning"),
    15_000,
  );
}

/** Asserts the controller logged "address held" for `address` with `held`, and returns the line. */
async function heldLine(ctl: ControllerProc, address: string, held: string, timeoutMs = 15_000): Promise<string> {
  return ctl.waitLog(new RegExp(`"msg":"address held".*"address":"${address.replace(/\./g, "\\.")}".*"held":"${held}"`), timeoutMs);
}

// ---------------------------------------------------------------- window 1: lost endpoints

const NS_GONE = "berth-hold-nsdel";
const NS_OTHER = "berth-hold-other";
const P_NSDEL = "hold-nsdel";

S("a namespace deleted while its pods are in their grace period: its endpoints go at once, its pods' addresses stay held until the pods are gone", () =>
  withControllers({ tag: "holdns", namespaces: [NS_GONE, NS_OTHER], pools: [P_NSDEL] }, async (c) => {
    apply(poolManifest(P_NSDEL, { subnet: "10.6.0.0/16", ips: ["10.6.191.1-10.6.191.2"] }));
    const node1 = c.node("node1");
    const dbs = ["db-a", "db-b"].map((n) => addShort(c, node1, NS_GONE, n, plainPod(NS_GONE, n, "node1", P_NSDEL, 120)));
    const ctl = await startController({ identity: "ctl-holdns", resyncSeconds: 2, addTimeoutSeconds: 1 });
    await ctl.waitLeader();
    await ctl.waitScans(1);
    await sleep(WINDOW_MS + 1000); // every claim's ADD window is over: 0.4 took an unbound one for half-finished

    // kubectl delete namespace: the namespace controller deletes the endpoints at once, the pods gracefully (120 s).
    await admin.must("DELETE", path("namespaces", { name: NS_GONE }));
    await waitFor("the namespace's BerthEndpoints to be gone", () => dbs.every((d) => !endpointOf(NS_GONE, d.name)), 30_000);
    // The namespace controller deletes the namespace's objects in no set order: its pods too, gracefully (120 s).
    await waitFor("the namespace's pods to be Terminating", () => dbs.every((d) => podOf(NS_GONE, d.name)?.metadata.deletionTimestamp), 30_000);
    await ctl.waitScans(3);
    for (const d of dbs) assert.ok(claimOf(d.address), `${d.name}'s ${d.address} stays claimed while the pod may still run\n${ctl.logTail()}`);
    // Nothing can be created in a Terminating namespace: the endpoints are not rebuilt, the addresses held and reported.
    for (const d of dbs) await heldLine(ctl, d.address, "endpoint-lost");
    await ctl.waitLog(/endpoint not rebuilt/);
    assert.is(await ctl.metric('berth_addresses_held{reason="endpoint-lost"}'), 2);
    // The namespace takes no Event either: each hold's Event goes on its claim (default namespace).
    for (const d of dbs) await heldEvent(d.address);
    assert.equal(
      ctl.releases((r) => r.pod.startsWith(`${NS_GONE}/`)),
      [],
      "nothing released",
    );
    // Another pod finds the pool full (0.4 gave it one of the addresses the database pods still answered on).
    const other = c.berth("ADD", node1, {
      containerId: randomBytes(32).toString("hex"),
      args: podArgs(NS_OTHER, "other", plainPod(NS_OTHER, "other", "node1", P_NSDEL)),
      ipamExtra: TIMEOUT,
    });
    assert.is(other.json?.code, 100, `another pod's ADD is refused while both addresses are held: ${other.stdout}`);

    // The pods are gone (their kubelet finished, or someone force-deleted them): released.
    deletePods(
      NS_GONE,
      dbs.map((d) => d.name),
      { force: true },
    );
    for (const d of dbs) await waitReleased(d.address, 15_000, ctl);
    assert.equal(
      (await ctl.waitReleases((r) => r.pod.startsWith(`${NS_GONE}/`), 2)).map((r) => r.reason),
      ["half-finished-add", "half-finished-add"],
    );
  }),
);

const NS_BEP = "berth-hold-bep";
const P_BEP = "hold-bep";

S(
  "kubectl delete bep under a running pod and a running StatefulSet member: the entries are written back, and both keep their addresses through a sandbox restart and a recreation",
  () =>
    withControllers({ tag: "holdbep", namespaces: [NS_BEP], pools: [P_BEP] }, async (c) => {
      apply(poolManifest(P_BEP, { subnet: "10.6.0.0/16", ips: ["10.6.191.11-10.6.191.15"] }));
      const node1 = c.node("node1");
      const web = addShort(c, node1, NS_BEP, "web", plainPod(NS_BEP, "web", "node1", P_BEP));
      statefulSet(NS_BEP, "keep", 1, P_BEP);
      const keep = await member(c, node1, NS_BEP, "keep-0");
      const ctl = await startController({ identity: "ctl-holdbep", resyncSeconds: 2, addTimeoutSeconds: 1 });
      await ctl.waitLeader();
      await ctl.waitScans(1);
      await sleep(WINDOW_MS + 1000);

      for (const h of [web, keep]) await admin.must("DELETE", path("berthendpoints", { ns: NS_BEP, name: h.name }));
      for (const h of [web, keep]) {
        await waitFor(`${h.name}'s endpoint to be written back\n${ctl.logTail()}`, () => addresses(endpointOf(NS_BEP, h.name)).includes(h.address), 15_000);
        assert.ok(claimOf(h.address), `${h.name} keeps ${h.address}`);
      }
      assert.is(endpointOf(NS_BEP, "keep-0")!.spec.ownerControllerType, "StatefulSet", "the member's endpoint names its set again");
      assert.ok(
        events(NS_BEP, "EndpointRebuilt").some((e) => e.involvedObject.name === "web"),
        "an Event says so",
      );
      assert.ok(((await ctl.metric('berth_endpoint_repairs_total{action="rebuild-entry"}')) ?? 0) >= 2);

      // web's sandbox restarts: its ADD takes its address back.
      const again = addShort(c, node1, NS_BEP, "web", web.uid);
      assert.is(again.address, web.address, "a restarted sandbox gets its address back");
      // keep-0 is recreated (new UID) with no DEL of the old sandbox: it gets its address back.
      deletePod(NS_BEP, "keep-0");
      await ctl.waitScans(1);
      const back = await member(c, node1, NS_BEP, "keep-0", keep.uid);
      assert.is(back.address, keep.address, "the member comes back to its address");
      assert.equal(
        ctl.releases((r) => r.pod.startsWith(`${NS_BEP}/`)),
        [],
        "nothing released",
      );
    }),
);

const NS_GAP = "berth-hold-gap";
const P_GAP = "hold-gap";

S(
  "a member's endpoint lost, no controller to write it back: its sandbox restart's DEL keeps the binding, and re-created (new UID) it comes back to its address",
  () =>
    withControllers({ tag: "holdgap", namespaces: [NS_GAP], pools: [P_GAP] }, async (c) => {
      apply(poolManifest(P_GAP, { subnet: "10.6.0.0/16", ips: ["10.6.191.71-10.6.191.73"] }));
      const node1 = c.node("node1");
      statefulSet(NS_GAP, "gap", 1, P_GAP);
      const m = await member(c, node1, NS_GAP, "gap-0");
      // No controller runs until the end: the endpoint stays lost (a CRD not served yet, no leader).
      await admin.must("DELETE", path("berthendpoints", { ns: NS_GAP, name: "gap-0" }));
      const del = c.berth("DEL", node1, { containerId: m.containerId, args: podArgs(NS_GAP, "gap-0", m.uid), ipamExtra: TIMEOUT });
      assert.is(del.status, 0, `DEL: ${del.stdout} ${del.stderr}`);
      assert.is(claimOf(m.address)?.spec.podUID, m.uid, `the DEL kept the member's claim of ${m.address}\n${c.logTail(node1)}`);
      assert.match(c.logTail(node1), "addresses stay bound");

      // The member is re-created by its StatefulSet (another UID) with still no endpoint: its ADD finds its claim.
      deletePod(NS_GAP, "gap-0");
      const back = await member(c, node1, NS_GAP, "gap-0", m.uid);
      assert.is.not(back.uid, m.uid);
      assert.is(back.address, m.address, `the re-created member comes back to its address\n${c.logTail(node1)}`);
      assert.is(claimOf(m.address)?.spec.podUID, back.uid, "its claim names the new incarnation");
      assert.ok(addresses(endpointOf(NS_GAP, "gap-0")).includes(m.address), "its ADD wrote the endpoint again");

      const ctl = await startController({ identity: "ctl-holdgap", resyncSeconds: 2, addTimeoutSeconds: 1 });
      await ctl.waitLeader();
      await ctl.waitScans(2);
      assert.equal(
        ctl.releases((r) => r.pod.startsWith(`${NS_GAP}/`)),
        [],
        "nothing released",
      );
      assert.ok(claimOf(m.address));
    }),
);

const NS_CRD = "berth-hold-crd";
const P_CRD = "hold-crd";
const ENDPOINT_CRD = readFileSync(join(import.meta.dirname, "../../fixtures/crds/berthendpoints.yaml"), "utf8");

S("the BerthEndpoint CRD deleted and re-created: every endpoint is written back, nothing is released", () =>
  withControllers({ tag: "holdcrd", namespaces: [NS_CRD], pools: [P_CRD] }, async (c) => {
    apply(poolManifest(P_CRD, { subnet: "10.6.0.0/16", ips: ["10.6.191.21-10.6.191.24"] }));
    const node1 = c.node("node1");
    const pods = ["c1", "c2", "c3"].map((n) => addShort(c, node1, NS_CRD, n, plainPod(NS_CRD, n, "node1", P_CRD)));
    const ctl = await startController({ identity: "ctl-holdcrd", resyncSeconds: 2, addTimeoutSeconds: 1 });
    await ctl.waitLeader();
    await ctl.waitScans(1);
    await sleep(WINDOW_MS + 1000);
    const crd = path("customresourcedefinitions", { name: "berthendpoints.ipam.berth.dev" });
    await admin.must("DELETE", crd);
    await waitForAsync("the BerthEndpoint CRD to be gone", async () => !(await admin.get(crd)), 60_000);
    try {
      await ctl.waitScans(2);
    } finally {
      apply(ENDPOINT_CRD);
      await waitForAsync(
        "the BerthEndpoint CRD to be served again",
        async () => (await admin.request("GET", path("berthendpoints", { ns: NS_CRD }))).status === 200,
        60_000,
      );
    }
    for (const p of pods) {
      await waitFor(`${p.name}'s endpoint to be written back\n${ctl.logTail()}`, () => addresses(endpointOf(NS_CRD, p.name)).includes(p.address), 20_000);
      assert.ok(claimOf(p.address), `${p.name} keeps ${p.address}`);
    }
    await ctl.waitScans(1);
    assert.equal(
      ctl.releases((r) => r.pod.startsWith(`${NS_CRD}/`)),
      [],
      "nothing released",
    );
  }),
);

// ---------------------------------------------------------------- window 2: static pods

const NS_STATIC = "berth-hold-static";
const P_STATIC = "hold-static";
const STATIC_NODE = "berth-static-node";

S("a static pod's mirror pod deleted and re-created: the address stays; it goes with the node", () =>
  withControllers({ tag: "holdstatic", namespaces: [NS_STATIC], pools: [P_STATIC] }, async (c) => {
    apply(poolManifest(P_STATIC, { subnet: "10.6.0.0/16", ips: ["10.6.191.31-10.6.191.32"] }));
    makeNode(STATIC_NODE);
    try {
      const hash = randomBytes(16).toString("hex");
      const mirror = () =>
        apply(
          JSON.stringify({
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "etcd-static", namespace: NS_STATIC, annotations: { ...ippool(P_STATIC), "kubernetes.io/config.mirror": hash } },
            spec: { nodeName: STATIC_NODE, containers: [{ name: "app", image: "nginx" }] },
          }),
        );
      mirror();
      const firstMirror = podUid(NS_STATIC, "etcd-static");
      const held = addShort(c, c.node(STATIC_NODE), NS_STATIC, "etcd-static", hash);
      assert.is(claimOf(held.address)?.spec.podUID, hash, "the claim records the kubelet's UID, which every mirror pod carries");
      const ctl = await startController({ identity: "ctl-holdstatic", resyncSeconds: 1, addTimeoutSeconds: 1 });
      await ctl.waitLeader();
      await sleep(WINDOW_MS + 1000);

      // Someone deletes the mirror pod: the static pod keeps running on its node.
      deletePods(NS_STATIC, ["etcd-static"], { force: true });
      await ctl.waitScans(3);
      assert.ok(claimOf(held.address), `the static pod keeps ${held.address} while its mirror is gone\n${ctl.logTail()}`);
      await heldLine(ctl, held.address, "static-pod");
      assert.is(await ctl.metric('berth_addresses_held{reason="static-pod"}'), 1);
      await heldEvent(held.address); // no pod object to carry it: on the claim
      // The kubelet re-creates the mirror: another UID, the same config hash.
      mirror();
      assert.is.not(podUid(NS_STATIC, "etcd-static"), firstMirror);
      await ctl.waitScans(2);
      assert.ok(claimOf(held.address), "and after the mirror is back");
      assert.equal(
        ctl.releases((r) => r.pod === `${NS_STATIC}/etcd-static`),
        [],
        "nothing released",
      );

      // The node is gone (and the pod GC deletes its mirror): released.
      deletePods(NS_STATIC, ["etcd-static"], { force: true });
      await deleteNode(STATIC_NODE);
      await waitReleased(held.address, 15_000, ctl);
      assert.equal(
        (await ctl.waitReleases((r) => r.pod === `${NS_STATIC}/etcd-static`, 1)).map((r) => r.reason),
        ["node-deleted"],
      );
    } finally {
      await deleteNode(STATIC_NODE);
    }
  }),
);

// ---------------------------------------------------------------- window 4: Terminating and terminal pods

const NS_TERM = "berth-hold-term";
const P_TERM = "hold-term";
const NEW_NODE = "berth-kubelet-128";

S(
  "a pod stuck Terminating past its grace period (Ready node, NotReady node) and a Succeeded pod on a 1.20 kubelet keep their addresses until their DEL or their pod object's end; a Succeeded pod on a 1.24+ containerd node is released",
  () =>
    withControllers({ tag: "holdterm", namespaces: [NS_TERM], pools: [P_TERM] }, async (c) => {
      apply(poolManifest(P_TERM, { subnet: "10.6.0.0/16", ips: ["10.6.191.41-10.6.191.46"] }));
      makeNode(NEW_NODE, "v1.28.3", "containerd://1.7.2");
      try {
        const on = (node: string, name: string, grace?: number) => addShort(c, c.node(node), NS_TERM, name, plainPod(NS_TERM, name, node, P_TERM, grace));
        const stuck = on("node1", "stuck", 2);
        const cut = on("node3", "cut", 2);
        const done = on("node1", "done");
        const doneNew = on(NEW_NODE, "done-new");
        // 0.4's eager flag, still accepted: it changes nothing now.
        const ctl = await startController({
          identity: "ctl-holdterm",
          resyncSeconds: 2,
          addTimeoutSeconds: 1,
          args: ["--release-terminating-on-unready-nodes"],
        });
        await ctl.waitLeader();
        await ctl.waitScans(1);

        disconnectNode("node3", "False");
        const t0 = Date.now();
        deletePods(NS_TERM, ["stuck", "cut"]);
        await setPhase(NS_TERM, "done", "Succeeded");
        await setPhase(NS_TERM, "done-new", "Succeeded");
        // A 1.24+ kubelet writes Succeeded only once the sandbox is stopped (CNI DEL done): released.
        await waitReleased(doneNew.address, 15_000, ctl);
        assert.equal(
          (await ctl.waitReleases((r) => r.pod === `${NS_TERM}/done-new`, 1)).map((r) => r.reason),
          ["pod-terminated"],
        );

        // Past grace (2 s) + margin (5 s) + scans: their DEL never came, so they may still use their addresses.
        await sleep(Math.max(0, t0 + 9000 - Date.now()));
        await ctl.waitScans(2);
        for (const h of [stuck, cut, done]) assert.ok(claimOf(h.address), `${h.name} keeps ${h.address}\n${ctl.logTail()}`);
        await heldLine(ctl, stuck.address, "terminating");
        await heldLine(ctl, cut.address, "terminating");
        await heldLine(ctl, done.address, "terminal");
        assert.is(await ctl.metric('berth_addresses_held{reason="terminating"}'), 2);
        assert.is(await ctl.metric('berth_addresses_held{reason="terminal"}'), 1);
        await waitFor("AddressHeld Events on the held pods", () => {
          const on = new Set(events(NS_TERM, "AddressHeld").map((e) => e.involvedObject.name));
          return ["stuck", "cut", "done"].every((n) => on.has(n));
        });
        assert.equal(
          ctl.releases((r) => ["stuck", "cut", "done"].some((n) => r.pod === `${NS_TERM}/${n}`)),
          [],
          "nothing of theirs released",
        );

        // The kubelet's DEL of done's sandbox arrives: released by it. stuck's pod object goes: released by the controller.
        const del = c.berth("DEL", c.node("node1"), { containerId: done.containerId, args: podArgs(NS_TERM, "done", done.uid), ipamExtra: TIMEOUT });
        assert.is(del.status, 0, del.stderr);
        assert.not.ok(claimOf(done.address), "DEL of a Succeeded pod releases its address");
        deletePods(NS_TERM, ["stuck"], { force: true });
        await waitReleased(stuck.address, 15_000, ctl);
        assert.equal(
          (await ctl.waitReleases((r) => r.pod === `${NS_TERM}/stuck`, 1)).map((r) => r.reason),
          ["pod-deleted"],
        );
        assert.ok(claimOf(cut.address), "cut, on a node that is not Ready, still keeps its address");
        await ctl.waitLog(/release-terminating-on-unready-nodes has no effect/);
      } finally {
        await deleteNode(NEW_NODE);
      }
    }),
);

// ---------------------------------------------------------------- window 7: phantom bindings

const NS_PH = "berth-hold-phantom";
const P_PH = "hold-phantom";

S(
  "a release whose endpoint write fails leaves no phantom: the next scans strip it, and the member that comes back takes another address instead of failing",
  () =>
    withControllers({ tag: "holdph", namespaces: [NS_PH], pools: [P_PH] }, async (c) => {
      apply(poolManifest(P_PH, { subnet: "10.6.0.0/16", ips: ["10.6.191.51-10.6.191.52"] }));
      const node1 = c.node("node1");
      statefulSet(NS_PH, "ph", 2, P_PH);
      const [m0, m1] = [await member(c, node1, NS_PH, "ph-0"), await member(c, node1, NS_PH, "ph-1")];
      const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki") });
      try {
        const ctl = await startController({
          identity: "ctl-holdph",
          resyncSeconds: 2,
          addTimeoutSeconds: 1,
          kubeconfig: c.proxiedKubeconfig(proxy, controllerToken()),
        });
        await ctl.waitLeader();
        await ctl.waitScans(1);
        // Every write to ph-1's endpoint fails from now on (500).
        const failure = { kind: "Status", apiVersion: "v1", status: "Failure", message: "injected by the test", code: 500 };
        for (const method of ["PUT", "DELETE", "PATCH"]) proxy.rule({ method, path: /\/berthendpoints\/ph-1/, action: "answer", status: 500, body: failure });

        // Scaled to 1: ph-1 goes without a DEL (its node died, say); the controller releases its address.
        scaleStatefulSet(NS_PH, "ph", 1);
        await waitFor("ph-1 to be terminating", () => podOf(NS_PH, "ph-1")?.metadata.deletionTimestamp);
        deletePod(NS_PH, "ph-1");
        await waitReleased(m1.address, 15_000, ctl);
        assert.ok(addresses(endpointOf(NS_PH, "ph-1")).includes(m1.address), "the endpoint write failed: ph-1's endpoint still lists the address");
        // Someone else, on another node, takes it.
        const thief = addShort(c, c.node("node2"), NS_PH, "thief", plainPod(NS_PH, "thief", "node2", P_PH));
        assert.is(thief.address, m1.address);

        // The API server takes writes again: the next scans strip the phantom.
        proxy.clear();
        await waitFor(`ph-1's phantom binding to be stripped\n${ctl.logTail()}`, () => !addresses(endpointOf(NS_PH, "ph-1")).includes(m1.address), 15_000);
        await ctl.waitLog(/phantom binding stripped.*berth-hold-phantom\/ph-1/);
        assert.ok(((await ctl.metric('berth_endpoint_repairs_total{action="strip-phantom"}')) ?? 0) >= 1);

        // Scaled to 2 again, with room in the pool: ph-1 takes a free address (0.4 insisted on the old one: 102).
        patchPool(P_PH, { spec: { ips: ["10.6.191.51-10.6.191.53"] } });
        scaleStatefulSet(NS_PH, "ph", 2);
        const back = await member(c, node1, NS_PH, "ph-1", m1.uid);
        assert.is(back.address, "10.6.191.53");
        assert.is(claimOf(m1.address)?.spec.podName, "thief", "the thief keeps what it took");
        assert.ok(claimOf(m0.address), "ph-0 untouched");
      } finally {
        await proxy.close();
      }
    }),
);

// ---------------------------------------------------------------- window 11: API servers' clocks apart

const NS_SKEW = "berth-hold-skew";
const P_SKEW = "hold-skew";

S(
  "API servers a minute apart: a claim stamped by a slow-clocked server is left to its ADD for its whole window, measured from the controller's first sight",
  () =>
    withControllers({ tag: "holdskew", namespaces: [NS_SKEW], pools: [P_SKEW] }, async (c) => {
      apply(poolManifest(P_SKEW, { subnet: "10.6.0.0/16", ips: ["10.6.191.61-10.6.191.62"] }));
      const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki") });
      // The controller talks to a server whose clock is 60 s ahead of the one that stamps the claims.
      proxy.clockSkewMs = 60_000;
      try {
        const ctl = await startController({
          identity: "ctl-holdskew",
          resyncSeconds: 1,
          addTimeoutSeconds: 1,
          kubeconfig: c.proxiedKubeconfig(proxy, controllerToken()),
        });
        await ctl.waitLeader();
        await ctl.waitScans(1);
        // An ADD in flight for a pod deleted meanwhile: its claim, not bound yet, with a 12 s window.
        const t0 = Date.now();
        await admin.create(path("berthipclaims"), {
          apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
          kind: CLAIM_KIND,
          metadata: { name: claimNameOf("10.6.191.61"), labels: { [POOL_LABEL]: labelValue(P_SKEW) } },
          spec: {
            address: "10.6.191.61",
            ipVersion: 4,
            pool: P_SKEW,
            podNamespace: NS_SKEW,
            podName: "in-flight",
            podUID: "uid-in-flight",
            containerID: randomBytes(32).toString("hex"),
            interface: "eth0",
            node: "node1",
            claimedAt: new Date().toISOString(),
            addDeadlineSeconds: 12,
          },
        });
        await sleep(6000);
        await ctl.waitScans(2);
        assert.ok(claimOf("10.6.191.61"), `6 s after its creation the claim is still left to its ADD (0.4 saw it 66 s old)\n${ctl.logTail()}`);
        const gone = await waitReleased("10.6.191.61", 25_000, ctl);
        console.error(`[holdskew] released ${gone - t0} ms after its creation (window 12 s, clocks 60 s apart)`);
        assert.ok(gone - t0 >= 12_000, `not before its 12 s window (${gone - t0} ms)`);
        assert.equal(
          (await ctl.waitReleases((r) => r.pod === `${NS_SKEW}/in-flight`, 1)).map((r) => r.reason),
          ["half-finished-add"],
        );
      } finally {
        await proxy.close();
      }
    }),
);

S.run();
