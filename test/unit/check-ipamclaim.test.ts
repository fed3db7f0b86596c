/**
 * berth check (plugin/check/find-problems.ts) on IPAMClaim-held addresses
 * (issue 21): the pods of one IPAMClaim that show its address (a live
 * migration) are no duplicate and miss no claim; an orphan only when the
 * IPAMClaims were listed and the controller's rule would release it.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ClusterFacts, podFacts } from "../../plugin/check/cluster-facts.ts";
import { findProblems } from "../../plugin/check/find-problems.ts";
import { toPool } from "../../plugin/cluster/pool-choice.ts";
import { NETWORK_STATUS_ANNOTATION } from "../../plugin/ipam/pod-shown.ts";
import type { ClaimObject, IpamClaimObject, PodObject, PoolObject } from "../../plugin/kube/kube-api.ts";

const NS = "vms";
const NOW = Date.parse("2026-12-08T12:00:00Z");
const OLD = new Date(NOW - 3_600_000).toISOString();
const poolObject: PoolObject = { metadata: { name: "vm-pool" }, spec: { ipVersion: 4, subnet: "10.9.80.0/24", ips: ["10.9.80.10-10.9.80.20"] } };
const pool = toPool(poolObject);

function pod(name: string, ref: string | undefined, ip = "10.9.80.10"): PodObject {
  const networks = JSON.stringify([{ name: "vm-net", interface: "net1", ...(ref ? { "ipam-claim-reference": ref } : {}) }]);
  const status = JSON.stringify([{ name: "vms/vm-net", interface: "net1", ips: [ip] }]);
  return {
    metadata: {
      name,
      namespace: NS,
      uid: `uid-${name}`,
      creationTimestamp: OLD,
      annotations: { "k8s.v1.cni.cncf.io/networks": networks, [NETWORK_STATUS_ANNOTATION]: status },
    },
    spec: { nodeName: "n1" },
    status: { phase: "Running" },
  };
}

const claim: ClaimObject = {
  metadata: { name: "v4-10-9-80-10", uid: "c1", creationTimestamp: OLD },
  spec: {
    address: "10.9.80.10",
    ipVersion: 4,
    pool: "vm-pool",
    podNamespace: NS,
    podName: "virt-launcher-vm1-target",
    podUID: "uid-virt-launcher-vm1-target",
    containerID: "c",
    interface: "net1",
    node: "n1",
    claimedAt: OLD,
    addDeadlineSeconds: 9,
    ipamClaim: { name: "vm1.net1", uid: "ic-1" },
  },
};

function facts(pods: PodObject[], ipamClaims?: IpamClaimObject[]): ClusterFacts {
  return {
    pools: new Map([["vm-pool", { object: poolObject, pool }]]),
    claims: [claim],
    pods: new Map(pods.map((p) => [`${NS}/${p.metadata.name}`, podFacts(p, [pool])])),
    endpoints: [],
    statefulSets: new Map(),
    nodes: new Map(),
    ...(ipamClaims ? { ipamClaims: new Map(ipamClaims.map((ic) => [`${NS}/${ic.metadata.name}`, ic])) } : {}),
    controllerLeads: true,
    now: NOW,
    requests: new Map(),
  };
}

const kinds = async (f: ClusterFacts) => (await findProblems(f, 2000)).problems.map((p) => p.kind).filter((k) => k !== "count-drift");

test("a live migration's source and target show the address: no duplicate, no missing claim", async () => {
  const both = [pod("virt-launcher-vm1-source", "vm1.net1"), pod("virt-launcher-vm1-target", "vm1.net1")];
  assert.equal(await kinds(facts(both, [{ metadata: { name: "vm1.net1", namespace: NS, uid: "ic-1" }, spec: { network: "vm-net", interface: "net1" } }])), []);
});

test("a pod that does not name the IPAMClaim and shows its address is a duplicate", async () => {
  const f = facts([pod("intruder", undefined), pod("virt-launcher-vm1-target", "vm1.net1")], []);
  assert.ok((await kinds(f)).includes("duplicate-address"));
});

test("orphan-claim: only when the IPAMClaims were listed, the IPAMClaim is gone and no pod names it", async () => {
  assert.equal(await kinds(facts([])), [], "IPAMClaims not listed: held");
  assert.equal(await kinds(facts([], [])), ["orphan-claim"], "listed, gone, no pod");
  const still = facts([pod("virt-launcher-vm1-source", "vm1.net1", "10.9.80.10")], []);
  assert.equal(await kinds(still), [], "a pod that names it still exists");
});

test.run();
