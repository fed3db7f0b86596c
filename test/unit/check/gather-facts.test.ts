/**
 * What `berth check` keeps of the lists (plugin/check/cluster-facts.ts): of
 * the pods, only those a claim names, that show an address of a berth
 * pool or that name an IPAMClaim, so a big cluster's other pods cost it nothing; every claim and
 * endpoint. The whole check through dist/berth against 50,000 objects is
 * the controller bench's phase 5 (BENCHMARKS.md).
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { gatherFacts } from "../../../plugin/check/cluster-facts.ts";
import type { ControllerApi } from "../../../plugin/kube/controller-api.ts";
import type { ClaimObject, EndpointObject, PodObject, PoolObject } from "../../../plugin/kube/kube-api.ts";

const pool: PoolObject = { metadata: { name: "p", resourceVersion: "1" }, spec: { subnet: "10.0.0.0/24", ips: ["10.0.0.1-10.0.0.10"] } };

const claim = (pod: string, address: string): ClaimObject => ({
  metadata: { name: `v4-${address.replace(/\./g, "-")}`, uid: `c-${pod}`, resourceVersion: "2" },
  spec: {
    address,
    ipVersion: 4,
    pool: "p",
    podNamespace: "ns",
    podName: pod,
    podUID: `u-${pod}`,
    containerID: "c",
    interface: "eth0",
    node: "n1",
    claimedAt: "2026-01-01T00:00:00Z",
  },
});

const pod = (name: string, ip?: string): PodObject =>
  ({
    metadata: { name, namespace: "ns", uid: `u-${name}`, resourceVersion: "3" },
    spec: { nodeName: "n1" },
    status: { phase: "Running", ...(ip ? { podIPs: [{ ip }] } : {}) },
  }) as PodObject;

const vmPod = (name: string): PodObject => {
  const p = pod(name);
  p.metadata.annotations = { "k8s.v1.cni.cncf.io/networks": JSON.stringify([{ name: "net", interface: "net1", "ipam-claim-reference": "vm.net1" }]) };
  return p;
};

const endpoint = (name: string, ip: string): EndpointObject => ({
  metadata: { name, namespace: "ns", resourceVersion: "4" },
  spec: { podUID: `u-${name}`, node: "n1", ownerControllerType: "None", ips: [{ interface: "eth0", ipv4: `${ip}/24`, ipv4Pool: "p" }] },
});

/** A fake API server serving the lists in pages of `pageSize`. */
function fakeApi(o: { claims: ClaimObject[]; pods: PodObject[]; endpoints: EndpointObject[] }): ControllerApi {
  const pages = async <T>(items: T[], size: number, onPage: (page: T[]) => void) => {
    let n = 0;
    for (let i = 0; i < items.length || n === 0; i += size, n++) onPage(items.slice(i, i + size));
    return n;
  };
  return {
    listPools: async () => [pool],
    listAllClaims: (size: number, f: (p: ClaimObject[]) => void) => pages(o.claims, size, f),
    listAllPods: (size: number, f: (p: PodObject[]) => void) => pages(o.pods, size, f),
    listAllEndpoints: (size: number, f: (p: EndpointObject[]) => void) => pages(o.endpoints, size, f),
    listAllStatefulSets: (size: number, f: (p: never[]) => void) => pages([], size, f),
    listAllNodes: (size: number, f: (p: never[]) => void) => pages([], size, f),
    serverNow: () => Date.parse("2026-01-02T00:00:00Z"),
    getLease: async () => undefined,
  } as unknown as ControllerApi;
}

test("gatherFacts keeps the pods claims name, that show a berth address or name an IPAMClaim, and drops the rest", async () => {
  const api = fakeApi({
    claims: [claim("a", "10.0.0.1"), claim("gone", "10.0.0.2")],
    // a: claimed; b: shows a pool address with no claim; c: shows an address outside every pool; d: shows nothing
    // e: shows nothing yet, but names an IPAMClaim (a migration target before its ADD: the claim's rule reads it)
    pods: [pod("a", "10.0.0.1"), pod("b", "10.0.0.5"), pod("c", "192.168.0.9"), pod("d"), vmPod("e")],
    endpoints: [endpoint("a", "10.0.0.1"), endpoint("d", "10.0.0.7")],
  });
  const f = await gatherFacts(api, 2, { namespace: "kube-system", name: "berth-controller" });
  assert.equal([...f.pods.keys()].sort(), ["ns/a", "ns/b", "ns/e"]);
  assert.equal(f.pods.get("ns/b")?.shown, [{ address: "10.0.0.5", where: "status.podIPs" }]);
  assert.equal(
    f.claims.map((c) => c.metadata.name),
    ["v4-10-0-0-1", "v4-10-0-0-2"],
  );
  assert.equal(
    f.endpoints.map((e) => `${e.name} ${e.entries[0].addresses.join(",")}`),
    ["a 10.0.0.1", "d 10.0.0.7"],
  );
  assert.equal(f.requests.get("pods"), 3);
  assert.is(f.controllerLeads, false);
});

test.run();
