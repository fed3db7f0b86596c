/**
 * judge-claim.ts on IPAMClaim-held claims (issue 21): released only when
 * the IPAMClaim with the claim's UID is gone and no pod that may use the
 * address exists; never on a reader that cannot tell.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { NodeObject } from "../../../plugin/kube/controller-api.ts";
import type { ClaimObject, IpamClaimObject, PodObject } from "../../../plugin/kube/kube-api.ts";
import { judgeClaim, type Reader } from "../../../plugin/reconcile/judge-claim.ts";

const NS = "vms";
const NOW = Date.parse("2026-12-08T12:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
const OPTS = { addTimeoutMs: 2000, graceMarginMs: 5000, now: NOW };

function claim(written = NOW - 3_600_000): ClaimObject {
  return {
    metadata: { name: "v4-10-9-80-10", uid: "c1", creationTimestamp: iso(written) },
    spec: {
      address: "10.9.80.10",
      ipVersion: 4,
      pool: "vm-pool",
      podNamespace: NS,
      podName: "virt-launcher-vm1-bbbbb",
      podUID: "pod-b",
      containerID: "c",
      interface: "net1",
      node: "n1",
      claimedAt: iso(written),
      addDeadlineSeconds: 9,
      ipamClaim: { name: "vm1.net1", uid: "ic-1" },
    },
  };
}

const networks = (ref: string) => ({ "k8s.v1.cni.cncf.io/networks": JSON.stringify([{ name: "vm-net", interface: "net1", "ipam-claim-reference": ref }]) });

function pod(name: string, uid: string, o: { ref?: string; created?: number; phase?: string; node?: string } = {}): PodObject {
  return {
    metadata: { name, namespace: NS, uid, creationTimestamp: iso(o.created ?? NOW - 7_200_000), annotations: o.ref ? networks(o.ref) : {} },
    spec: { nodeName: o.node ?? "n1" },
    status: { phase: o.phase ?? "Running" },
  };
}

function ipamClaim(uid: string, created = NOW - 86_400_000): IpamClaimObject {
  return { metadata: { name: "vm1.net1", namespace: NS, uid, creationTimestamp: iso(created) }, spec: { network: "vm-net", interface: "net1" } };
}

function reader(o: { ic?: IpamClaimObject; pods?: PodObject[]; node?: NodeObject; partial?: boolean }): Reader {
  const pods = o.pods ?? [];
  const base: Reader = {
    getPod: async (ns, name) => pods.find((p) => p.metadata.namespace === ns && p.metadata.name === name),
    getStatefulSet: async () => undefined,
    getEndpoint: async () => undefined,
    getNode: async () => o.node,
  };
  if (o.partial) return base;
  return { ...base, getIpamClaim: async () => o.ic, listPodsIn: async (ns) => pods.filter((p) => p.metadata.namespace === ns) };
}

test("held while the IPAMClaim with its UID exists, even with every pod gone", async () => {
  const v = await judgeClaim(reader({ ic: ipamClaim("ic-1") }), claim(), OPTS);
  assert.equal(v, { release: false, reason: "held by IPAMClaim vms/vm1.net1" });
});

test("gone IPAMClaim, no pod: released (ipamclaim-deleted)", async () => {
  const v = await judgeClaim(reader({}), claim(), OPTS);
  assert.is(v.release, true);
  assert.is(v.release && v.reason, "ipamclaim-deleted");
});

test("within its ADD's window: held, whatever else", async () => {
  const v = await judgeClaim(reader({}), claim(NOW - 3000), OPTS);
  assert.equal(v, { release: false, reason: "ADD in progress" });
});

test("a reader that cannot read IPAMClaims (a scan's lists, berth check without them): held", async () => {
  const v = await judgeClaim(reader({ partial: true }), claim(), OPTS);
  assert.is(v.release, false);
});

test("gone IPAMClaim, the pod that took it last still exists (even without naming it any more): held", async () => {
  const v = await judgeClaim(reader({ pods: [pod("virt-launcher-vm1-bbbbb", "pod-b")] }), claim(), OPTS);
  assert.is(v.release, false);
  assert.match(!v.release ? v.reason : "", "which took it last, still exists");
});

test("gone IPAMClaim, a migration's source still runs and names it: held", async () => {
  const v = await judgeClaim(reader({ pods: [pod("virt-launcher-vm1-aaaaa", "pod-a", { ref: "vm1.net1" })] }), claim(), OPTS);
  assert.is(v.release, false);
  assert.match(!v.release ? v.reason : "", "virt-launcher-vm1-aaaaa that names it");
});

test("another incarnation under the holder's name is not the holder", async () => {
  const v = await judgeClaim(reader({ pods: [pod("virt-launcher-vm1-bbbbb", "pod-other")] }), claim(), OPTS);
  assert.is(v.release, true);
});

test("recreated IPAMClaim (new UID): pods created after it are its own; one created in the same second still counts", async () => {
  const born = NOW - 60_000;
  const after = await judgeClaim(
    reader({ ic: ipamClaim("ic-2", born), pods: [pod("virt-launcher-vm1-ccccc", "pod-c", { ref: "vm1.net1", created: born + 1000 })] }),
    claim(),
    OPTS,
  );
  assert.is(after.release, true, "a pod of the new IPAMClaim keeps nothing of the old one's");
  assert.match(after.release ? after.detail : "", "replaced by UID ic-2");
  const tie = await judgeClaim(
    reader({ ic: ipamClaim("ic-2", born), pods: [pod("virt-launcher-vm1-ccccc", "pod-c", { ref: "vm1.net1", created: born })] }),
    claim(),
    OPTS,
  );
  assert.is(tie.release, false, "same second: may be the old one's");
});

test("a pod naming another IPAMClaim, or in another namespace, does not hold it", async () => {
  const other = pod("virt-launcher-vm2-aaaaa", "pod-x", { ref: "vm2.net1" });
  const elsewhere = { ...pod("virt-launcher-vm1-zzzzz", "pod-z", { ref: "vm1.net1" }) };
  elsewhere.metadata.namespace = "other";
  const v = await judgeClaim(reader({ pods: [other, elsewhere] }), claim(), OPTS);
  assert.is(v.release, true);
});

test("a Succeeded pod that names it: held on a 1.20 kubelet, not where the sandbox is stopped first", async () => {
  const done = pod("virt-launcher-vm1-aaaaa", "pod-a", { ref: "vm1.net1", phase: "Succeeded" });
  const old = { metadata: { name: "n1" }, status: { nodeInfo: { kubeletVersion: "v1.20.2", containerRuntimeVersion: "containerd://1.6.20" } } };
  assert.is((await judgeClaim(reader({ pods: [done], node: old }), claim(), OPTS)).release, false);
  const recent = { metadata: { name: "n1" }, status: { nodeInfo: { kubeletVersion: "v1.29.0", containerRuntimeVersion: "containerd://1.7.0" } } };
  assert.is((await judgeClaim(reader({ pods: [done], node: recent }), claim(), OPTS)).release, true);
});

test.run();
