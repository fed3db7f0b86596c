/**
 * Issue 21: persistent addresses for VMs through IPAMClaim (multi-network
 * spec v1.3), through dist/berth on the test control plane, with
 * virt-launcher-shaped pods (KubeVirt itself is not needed): the pod's
 * `k8s.v1.cni.cncf.io/networks` element for the interface names the
 * IPAMClaim in `ipam-claim-reference`.
 *
 * The IPAMClaim CRD is installed from test/fixtures/ipamclaims/ (berth does
 * not ship it), unchanged. One controller runs throughout (the release
 * cases need it).
 *
 * Address range: 10.6.197.x (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster ipamclaim.test.ts
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Problem } from "../../plugin/check/problem.ts";
import { IPAMCLAIM_FINALIZER, IPAMCLAIM_PLURAL, IPAMCLAIM_UID_LABEL } from "../../plugin/kube/crd.ts";
import type { IpamClaimObject } from "../../plugin/kube/kube-api.ts";
import { BERTH, ROOT } from "../support/berth.ts";
import {
  apply,
  ClusterScope,
  claimOf,
  createNamespace,
  deletePod,
  listClaims,
  markPodReady,
  PLUGIN_KUBECONFIG,
  path,
  podArgs,
  podOf,
  podUid,
  poolManifest,
  type SimNode,
  waitFor,
} from "../support/cluster/cluster-env.ts";
import { type ControllerProc, startController, waitForAsync } from "../support/cluster/controller-env.ts";
import { APISERVER, admin, TESTENV_DIR } from "../support/cluster/test-plane.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { tokenOf } from "../support/kube/kubeconfig-token.ts";

const NS = "berth-ipamclaim";
const POOL = "ic-pool"; // 10.6.197.1-40
const ONE = "ic-one"; // 10.6.197.41 alone
const OLD = "ic-old"; // 10.6.197.42 alone
const IFACE = "net1";
const CRD_FILE = join(import.meta.dirname, "../fixtures/ipamclaims/k8s.cni.cncf.io_ipamclaims.yaml");

const S = suite("cluster: IPAMClaim (VM addresses, live migration)");
let scope: ClusterScope;
let node1: SimNode;
let node2: SimNode;
let ctl: ControllerProc;
let token: string;

/** Takes the finalizer off this file's IPAMClaim-held claims, so cleanup's deletes go through. */
function unseal(): void {
  for (const c of listClaims()) {
    if (c.metadata.labels?.[IPAMCLAIM_UID_LABEL] && c.spec.podNamespace === NS && c.metadata.finalizers?.length) {
      admin.sync.patch(path("berthipclaims", { name: c.metadata.name }), { metadata: { finalizers: null } }, "merge", [404]);
    }
  }
}

S.before(async () => {
  scope = new ClusterScope({ tag: "ic", namespaces: [NS], pools: [POOL, ONE, OLD] });
  try {
    unseal();
    await scope.removeStale();
    apply(readFileSync(CRD_FILE, "utf8"));
    await waitFor(
      "the IPAMClaim CRD to be served",
      () => {
        try {
          return Array.isArray(admin.sync.list(path(IPAMCLAIM_PLURAL)));
        } catch {
          return false;
        }
      },
      15_000,
      200,
    );
    await createNamespace(NS);
    node1 = scope.node("node1");
    node2 = scope.node("node2");
    token = tokenOf(PLUGIN_KUBECONFIG);
    apply(poolManifest(POOL, { subnet: "10.6.197.0/24", ips: ["10.6.197.1-10.6.197.40"] }));
    apply(poolManifest(ONE, { subnet: "10.6.197.0/24", ips: ["10.6.197.41"] }));
    apply(poolManifest(OLD, { subnet: "10.6.197.0/24", ips: ["10.6.197.42"] }));
    scope.onCleanup(unseal);
    ctl = await startController({ identity: "ctl-ipamclaim", resyncSeconds: 3, addTimeoutSeconds: 2, logDir: scope.tempDir("ctl") });
    await ctl.waitLeader();
  } catch (err) {
    await ctl?.stop().catch(() => undefined);
    scope.cleanup();
    throw err;
  }
});

S.after(async () => {
  try {
    await ctl?.stop();
  } finally {
    scope.cleanup();
  }
});

let counter = 0;
const cid = () => randomBytes(32).toString("hex");

/** An IPAMClaim as KubeVirt's ipam-extensions write one; returns its UID. */
function ipamClaim(name: string, network = scope.network, iface = IFACE): string {
  apply(JSON.stringify({ apiVersion: "k8s.cni.cncf.io/v1alpha1", kind: "IPAMClaim", metadata: { name, namespace: NS }, spec: { network, interface: iface } }));
  return getIpamClaim(name)!.metadata.uid!;
}

function getIpamClaim(name: string): IpamClaimObject | undefined {
  return admin.sync.get(path(IPAMCLAIM_PLURAL, { ns: NS, name }));
}

function deleteIpamClaim(name: string): void {
  admin.sync.delete(path(IPAMCLAIM_PLURAL, { ns: NS, name }));
}

type Pod = { name: string; uid: string; containerId: string };

/** A virt-launcher-shaped pod whose networks element for net1 names `ref` (or the element given). */
function vmPod(vm: string, ref: string | undefined, element: Record<string, unknown> = { name: "vm-net", interface: IFACE }, pool = POOL, node = "node1"): Pod {
  const name = `virt-launcher-${vm}-${(++counter).toString(36)}${randomBytes(2).toString("hex")}`;
  const el = { ...element, ...(ref ? { "ipam-claim-reference": ref } : {}) };
  apply(
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: NS,
        labels: { "kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": vm },
        annotations: { "k8s.v1.cni.cncf.io/networks": JSON.stringify([el]), "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) },
      },
      spec: { nodeName: node, containers: [{ name: "compute", image: "virt-launcher" }] },
    }),
  );
  return { name, uid: podUid(NS, name), containerId: cid() };
}

/**
 * An ADD's budget of 2 s: the controller leaves a claim to its ADD for
 * claimDeadlineSeconds after its last write (9 s then), so the release
 * cases do not wait the default budget's 65 s.
 */
const SHORT = { timeoutSeconds: 2 };

function cniOn(cmd: string, p: Pod, node = node1) {
  return scope.berth(cmd, node, { containerId: p.containerId, ifname: IFACE, args: podArgs(NS, p.name, p.uid), ipamExtra: SHORT });
}

function addOk(p: Pod, node = node1): string {
  const r = cniOn("ADD", p, node);
  assert.is(r.status, 0, `ADD of ${p.name}: ${r.stdout} ${r.stderr}`);
  return r.json.ips[0].address as string;
}

const bare = (cidr: string) => cidr.split("/")[0];
/** The CNI error's message (and details). */
const msg = (r: { json: any; stdout: string }) => `${r.json?.msg ?? r.stdout} ${r.json?.details ?? ""}`;

S("first ADD: the IPAMClaim holds the address by its UID; status.ips, ownerPod and the condition are written", () => {
  const uid = ipamClaim("vm-first.net1");
  const p = vmPod("vm-first", "vm-first.net1");
  const cidr = addOk(p);
  assert.match(cidr, /^10\.6\.197\.\d+\/24$/);
  const claim = claimOf(bare(cidr))!;
  assert.equal(claim.spec.ipamClaim, { name: "vm-first.net1", uid });
  assert.is(claim.metadata.labels?.[IPAMCLAIM_UID_LABEL], uid);
  assert.ok(claim.metadata.finalizers?.includes(IPAMCLAIM_FINALIZER), "sealed");
  const ic = getIpamClaim("vm-first.net1")!;
  assert.equal(ic.status?.ips, [cidr]);
  assert.equal(ic.status?.ownerPod, { name: p.name });
  const cond = ic.status?.conditions?.find((c) => c.type === "IPsAllocated");
  assert.is(cond?.status, "True");
  assert.match(cond!.message, POOL);
});

S("the VM restarted under a new virt-launcher name, on another node: same address; the old pod's DEL frees nothing", async () => {
  ipamClaim("vm-restart.net1");
  const first = vmPod("vm-restart", "vm-restart.net1");
  const cidr = addOk(first);
  deletePod(NS, first.name);
  assert.is(cniOn("DEL", first).status, 0);
  assert.ok(claimOf(bare(cidr)), "the claim stays with the IPAMClaim after the last pod's DEL");
  await ctl.waitScans(1);
  assert.ok(claimOf(bare(cidr)), "the controller keeps it while the IPAMClaim exists");
  const second = vmPod("vm-restart", "vm-restart.net1", undefined, POOL, "node2");
  assert.is(addOk(second, node2), cidr);
  assert.is(claimOf(bare(cidr))!.spec.podName, second.name);
  assert.equal(getIpamClaim("vm-restart.net1")!.status?.ownerPod, { name: second.name });
  assert.is(listClaims().filter((c) => c.spec.ipamClaim?.name === "vm-restart.net1").length, 1, "one claim, never two");
});

S("live migration: the target's ADD while the source runs; the source's DEL; the target keeps it; ownerPod moves", async () => {
  ipamClaim("vm-mig.net1");
  const source = vmPod("vm-mig", "vm-mig.net1");
  const cidr = addOk(source, node1);
  const target = vmPod("vm-mig", "vm-mig.net1", undefined, POOL, "node2");
  assert.is(addOk(target, node2), cidr, "both pods hold the address");
  assert.equal(getIpamClaim("vm-mig.net1")!.status?.ownerPod, { name: target.name });
  deletePod(NS, source.name);
  assert.is(cniOn("DEL", source, node1).status, 0);
  await ctl.waitScans(1);
  const claim = claimOf(bare(cidr));
  assert.ok(claim, "the source's DEL and deletion free nothing");
  assert.is(claim!.spec.podName, target.name);
  assert.is(claim!.spec.node, "node2");
  // The target's sandbox restarts: the same address again.
  target.containerId = cid();
  assert.is(addOk(target, node2), cidr);
});

S("two first ADDs of one IPAMClaim at once: one address; the loser gives its own back and its retry gets the winner's", async () => {
  const uid = ipamClaim("vm-race.net1");
  const pods = [vmPod("vm-race", "vm-race.net1"), vmPod("vm-race", "vm-race.net1", undefined, POOL, "node2")];
  const runs = await Promise.all(
    pods.map((p, i) =>
      scope.berthAsync("ADD", i === 0 ? node1 : node2, { containerId: p.containerId, ifname: IFACE, args: podArgs(NS, p.name, p.uid), ipamExtra: SHORT }),
    ),
  );
  const addresses = new Set<string>();
  for (const [i, r] of runs.entries()) {
    if (r.status === 0) addresses.add(r.json.ips[0].address);
    else {
      assert.is(r.json?.code, 11, `the loser is told to try again: ${r.stdout}`);
      addresses.add(addOk(pods[i], i === 0 ? node1 : node2));
    }
  }
  assert.is(addresses.size, 1, `one address for both: ${[...addresses].join(", ")}`);
  const held = listClaims().filter((c) => c.spec.ipamClaim?.uid === uid);
  assert.is(held.length, 1, "one claim");
  assert.equal(getIpamClaim("vm-race.net1")!.status?.ips, [...addresses]);
});

S("mismatched network or interface: refused, naming both; nothing taken", () => {
  ipamClaim("vm-wrongnet.net1", "another-network");
  const before = listClaims().length;
  const a = cniOn("ADD", vmPod("vm-wrongnet", "vm-wrongnet.net1"));
  assert.is(a.json?.code, 107);
  assert.match(msg(a), /network "another-network" interface "net1"/);
  assert.match(msg(a), `network "${scope.network}" interface "net1"`);
  ipamClaim("vm-wrongif.net1", scope.network, "net7");
  const b = cniOn("ADD", vmPod("vm-wrongif", "vm-wrongif.net1"));
  assert.is(b.json?.code, 107);
  assert.match(msg(b), `network "${scope.network}" interface "net7"`);
  assert.match(msg(b), `network "${scope.network}" interface "net1"`);
  assert.is(listClaims().length, before);
});

S("a reference to a missing IPAMClaim: refused, naming it; berth creates none", () => {
  const r = cniOn("ADD", vmPod("vm-missing", "vm-missing.net1"));
  assert.is(r.json?.code, 106);
  assert.match(msg(r), "IPAMClaim berth-ipamclaim/vm-missing.net1");
  assert.match(msg(r), "does not exist");
  assert.is(getIpamClaim("vm-missing.net1"), undefined);
});

S("a reference in an element without an interface: refused", () => {
  ipamClaim("vm-noif.net1");
  const before = listClaims().length;
  const r = cniOn("ADD", vmPod("vm-noif", "vm-noif.net1", { name: "vm-net" }));
  assert.is(r.json?.code, 107);
  assert.match(msg(r), 'names ipam-claim-reference "vm-noif.net1" without an "interface"');
  assert.is(listClaims().length, before);
});

S("the status write's answer lost: retried, one address, status right", async () => {
  const uid = ipamClaim("vm-lost.net1");
  const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki") });
  try {
    const kubeconfig = scope.proxiedKubeconfig(proxy, token);
    proxy.rule({ method: "PUT", path: /\/ipamclaims\/vm-lost\.net1\/status/, action: "drop-response", times: 1 });
    const p = vmPod("vm-lost", "vm-lost.net1");
    // Run without blocking: the proxy lives in this process.
    const r = await scope.berthAsync("ADD", node1, { containerId: p.containerId, ifname: IFACE, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(r.status, 0, `ADD through the proxy: ${r.stdout} ${r.stderr}`);
    const cidr = r.json.ips[0].address as string;
    assert.is(proxy.faults().length, 1, "the write was done, its answer lost");
    const held = listClaims().filter((c) => c.spec.ipamClaim?.uid === uid);
    assert.is(held.length, 1, "one claim");
    assert.equal(getIpamClaim("vm-lost.net1")!.status?.ips, [cidr]);
    // The pod's sandbox again, without the proxy: the same address.
    p.containerId = cid();
    assert.is(addOk(p), cidr);
  } finally {
    proxy.release();
    await proxy.close();
  }
});

S("the IPAMClaim deleted: held while a pod that names it exists, released once none does; another pod takes it", async () => {
  ipamClaim("vm-gone.net1");
  const p = vmPod("vm-gone", "vm-gone.net1", undefined, ONE);
  const cidr = addOk(p);
  assert.is(bare(cidr), "10.6.197.41");
  const other = vmPod("plain", undefined, { name: "vm-net", interface: IFACE }, ONE);
  const full = cniOn("ADD", other);
  assert.is.not(full.status, 0);
  assert.match(msg(full), "exhausted");
  deleteIpamClaim("vm-gone.net1");
  await ctl.waitScans(1);
  assert.ok(claimOf(bare(cidr)), "the pod that took it still exists: held");
  deletePod(NS, p.name);
  // Within the claim's ADD window (9 s after its last write) and a full scan (3 s).
  await waitForAsync(`${cidr}'s claim released by the controller`, async () => !claimOf(bare(cidr)), 30_000, 100);
  const rel = await ctl.waitReleases((r) => r.address === bare(cidr), 1);
  assert.is(rel[0].reason, "ipamclaim-deleted");
  other.containerId = cid();
  assert.is(addOk(other), cidr, "another pod takes it now");
});

S("a recreated IPAMClaim of the same name is a new holder: the old one's address is not handed over, and goes with the old pods", async () => {
  const oldUid = ipamClaim("vm-again.net1");
  const oldPod = vmPod("vm-again", "vm-again.net1");
  const oldCidr = addOk(oldPod);
  deleteIpamClaim("vm-again.net1");
  await waitFor("the IPAMClaim gone", () => !getIpamClaim("vm-again.net1"), 10_000, 100);
  const newUid = ipamClaim("vm-again.net1");
  assert.is.not(newUid, oldUid);
  // Created in a later second (server timestamps are whole seconds): the new pod is provably the new IPAMClaim's.
  await new Promise((r) => setTimeout(r, 1100));
  const newPod = vmPod("vm-again", "vm-again.net1");
  const newCidr = addOk(newPod);
  assert.is.not(newCidr, oldCidr, "the new IPAMClaim gets an address of its own");
  assert.equal(claimOf(bare(newCidr))!.spec.ipamClaim?.uid, newUid);
  assert.equal(claimOf(bare(oldCidr))!.spec.ipamClaim?.uid, oldUid, "the old address stays the old pod's while it exists");
  deletePod(NS, oldPod.name);
  await waitForAsync(`${oldCidr} released once the old pod is gone`, async () => !claimOf(bare(oldCidr)), 30_000, 100);
  assert.ok(claimOf(bare(newCidr)), "the new IPAMClaim's address stays");
});

S("mixed versions: a delete by a berth that does not know IPAMClaims (0.4 controller or DEL) only marks the claim", async () => {
  ipamClaim("vm-old.net1");
  const p = vmPod("vm-old", "vm-old.net1", undefined, OLD);
  const cidr = addOk(p);
  const before = claimOf(bare(cidr))!;
  // What a 0.4 controller sends for a claim whose pod is gone: DELETE on uid and resourceVersion.
  admin.sync.delete(path("berthipclaims", { name: before.metadata.name }), {
    preconditions: { uid: before.metadata.uid, resourceVersion: before.metadata.resourceVersion },
  });
  const marked = claimOf(bare(cidr));
  assert.ok(marked?.metadata.deletionTimestamp, "the claim stays, marked");
  const other = vmPod("plain-old", undefined, { name: "vm-net", interface: IFACE }, OLD);
  const refused = cniOn("ADD", other);
  assert.is.not(refused.status, 0, "nobody else gets the address");
  // The VM restarts: its new pod still gets it; the claim goes only by the 0.5 controller's judgement.
  deletePod(NS, p.name);
  const again = vmPod("vm-old", "vm-old.net1", undefined, OLD);
  assert.is(addOk(again), cidr);
  deleteIpamClaim("vm-old.net1");
  deletePod(NS, again.name);
  await waitForAsync(`${cidr} released by the 0.5 controller`, async () => !claimOf(bare(cidr)), 30_000, 100);
  other.containerId = cid();
  assert.is(addOk(other), cidr);
});

S(
  "berth check as fixtures/rbac-check.yaml's berth-check: a migrating VM's address, shown by two pods, is no problem; once its IPAMClaim and pods are gone it is an orphan (ipamclaim-deleted) until the controller releases it",
  async () => {
    apply(readFileSync(join(ROOT, "fixtures/rbac-check.yaml"), "utf8"));
    const reader = await scope.accountKubeconfig("berth-check-ic", "berth-check");
    const problemsOf = (address: string) => {
      const r = spawnSync(BERTH, ["check", "--kubeconfig", reader, "-o", "json", "--add-timeout-seconds", "2"], { encoding: "utf8", timeout: 120_000 });
      assert.ok(r.status === 0 || r.status === 1, `berth check ran (exit ${r.status}): ${r.stderr}`);
      return (JSON.parse(r.stdout).problems as Problem[]).filter((p) => p.address === address);
    };
    ipamClaim("vm-chk.net1");
    const source = vmPod("vm-chk", "vm-chk.net1");
    const cidr = addOk(source, node1);
    const target = vmPod("vm-chk", "vm-chk.net1", undefined, POOL, "node2");
    assert.is(addOk(target, node2), cidr);
    // Both virt-launcher pods show the address while the VM migrates.
    for (const p of [source, target]) markPodReady(NS, p.name, bare(cidr));
    assert.equal(problemsOf(bare(cidr)), [], "held by the IPAMClaim both pods name: neither a duplicate nor a missing claim");

    // The controller paused: the VM deleted, its pods and IPAMClaim gone; the check judges by the controller's rule.
    ctl.freeze();
    try {
      deleteIpamClaim("vm-chk.net1");
      for (const p of [source, target]) deletePod(NS, p.name);
      await waitFor("the IPAMClaim and both pods gone", () => !getIpamClaim("vm-chk.net1") && [source, target].every((p) => !podOf(NS, p.name)), 20_000, 200);
      const orphan = await waitFor(
        `berth check to report ${cidr} an orphan (past its claim's ADD window)`,
        () => problemsOf(bare(cidr)).find((p) => p.kind === "orphan-claim"),
        30_000,
        1000,
      );
      assert.is(orphan.rule, "ipamclaim-deleted");
    } finally {
      ctl.thaw();
    }
    await waitForAsync(`the controller to release ${cidr}`, async () => !claimOf(bare(cidr)), 30_000, 200);
    assert.equal(problemsOf(bare(cidr)), []);
  },
);

S("without the IPAMClaim CRD: a reference is a clear error, everything else works, held claims stay held", async () => {
  const mig = listClaims().find((c) => c.spec.ipamClaim?.name === "vm-mig.net1")!;
  admin.sync.delete(path("customresourcedefinitions", { name: "ipamclaims.k8s.cni.cncf.io" }));
  await waitFor("the IPAMClaim CRD gone", () => !admin.sync.get(path("customresourcedefinitions", { name: "ipamclaims.k8s.cni.cncf.io" })), 20_000, 200);
  const r = cniOn("ADD", vmPod("vm-nocrd", "vm-nocrd.net1"));
  assert.is(r.json?.code, 11, "try again later: the kind is not served (a restarting API server answers the same)");
  assert.match(msg(r), "ipamclaim berth-ipamclaim/vm-nocrd.net1");
  assert.match(msg(r), "CRD is not installed");
  const plain = vmPod("plain-nocrd", undefined);
  assert.match(addOk(plain), /^10\.6\.197\./);
  // The migration's target is deleted. Whether its IPAMClaim exists cannot be told while the kind is not
  // served (an API server that restarts says the same): held, never released on that answer.
  deletePod(NS, mig.spec.podName);
  await ctl.waitScans(2);
  assert.ok(claimOf(mig.spec.address), "held");
  assert.is(await ctl.leader(), 1, "the controller still leads");
  assert.ok(ctl.alive, "and runs");
});

S.run();
