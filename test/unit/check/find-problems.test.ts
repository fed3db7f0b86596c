/**
 * berth check's judgements on hand-made lists (plugin/check/find-problems.ts);
 * the same checks run through dist/berth against a real control plane in
 * test/cluster/check.test.ts.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterFacts, PoolFacts } from "../../../plugin/check/cluster-facts.ts";
import { podFacts } from "../../../plugin/check/cluster-facts.ts";
import { findProblems } from "../../../plugin/check/find-problems.ts";
import { sortProblems } from "../../../plugin/check/problem.ts";
import { toPool } from "../../../plugin/cluster/pool-choice.ts";
import type { ClaimObject, PodObject, PoolObject } from "../../../plugin/kube/kube-api.ts";

const poolObject: PoolObject = {
  metadata: { name: "p", resourceVersion: "1" },
  spec: { subnet: "10.9.0.0/16", ips: ["10.9.0.1-10.9.0.10"], excludeIPs: ["10.9.0.10"] },
} as PoolObject;
const pool = toPool(poolObject);

function claim(address: string, pod: string, uid = `uid-${pod}`): ClaimObject {
  return {
    metadata: { name: `v4-${address.replace(/\./g, "-")}`, resourceVersion: "5", creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: {
      address,
      ipVersion: 4,
      pool: "p",
      podNamespace: "ns",
      podName: pod,
      podUID: uid,
      containerID: "c",
      interface: "eth0",
      node: "n1",
      claimedAt: "2026-01-01T00:00:00Z",
      addDeadlineSeconds: 30,
    },
  };
}

function pod(name: string, shows: string[], extra: { annotations?: Record<string, string>; phase?: string } = {}): PodObject {
  return {
    metadata: { name, namespace: "ns", uid: `uid-${name}`, resourceVersion: "7", annotations: extra.annotations },
    spec: { nodeName: "n1" },
    status: { phase: extra.phase ?? "Running", podIPs: shows.map((ip) => ({ ip })) },
  } as PodObject;
}

function facts(claims: ClaimObject[], pods: PodObject[], endpoints: ClusterFacts["endpoints"] = []): ClusterFacts {
  const pools = new Map<string, PoolFacts>([["p", { object: poolObject, pool }]]);
  return {
    pools,
    claims,
    pods: new Map(pods.map((p) => [`ns/${p.metadata.name}`, podFacts(p, [pool])])),
    endpoints,
    statefulSets: new Map(),
    nodes: new Map(),
    controllerLeads: false,
    now: Date.parse("2026-01-01T01:00:00Z"),
    requests: new Map(),
  };
}

const kinds = (ps: { kind: string; address?: string }[]) => ps.map((p) => `${p.kind} ${p.address}`);

test("a pod that shows its own claimed, bound address: nothing; figures from the pool and its claims", async () => {
  const ep = { namespace: "ns", name: "a", entries: [{ interface: "eth0", podUID: "uid-a", addresses: ["10.9.0.1"] }] };
  const f = await findProblems(facts([claim("10.9.0.1", "a")], [pod("a", ["10.9.0.1"])], [ep]), 30_000);
  assert.equal(f.problems, []);
  assert.equal(f.pools, [{ name: "p", total: 9, claimed: 1, free: 8, retained: 0, excluded: 1 }]);
});

test("a pod showing an address without a claim is missing-claim, never also phantom-binding", async () => {
  const ep = { namespace: "ns", name: "a", entries: [{ interface: "eth0", podUID: "uid-a", addresses: ["10.9.0.1"] }] };
  const f = await findProblems(facts([], [pod("a", ["10.9.0.1"])], [ep]), 30_000);
  assert.equal(kinds(f.problems), ["missing-claim 10.9.0.1"]);
});

test("a pod showing an address whose claim names another pod (that does not show it): missing-claim, its own binding never a phantom", async () => {
  const ep = { namespace: "ns", name: "a", entries: [{ interface: "eth0", podUID: "uid-a", addresses: ["10.9.0.1"] }] };
  const f = await findProblems(facts([claim("10.9.0.1", "z")], [pod("a", ["10.9.0.1"]), pod("z", [])], [ep]), 30_000);
  assert.equal(kinds(f.problems), ["missing-claim 10.9.0.1"]);
  assert.match(f.problems[0].detail, "its claim names ns/z");
});

test("addresses outside every berth pool are not berth's business; a Succeeded pod is not live", async () => {
  const done = pod("b", ["10.9.0.2"], { phase: "Succeeded" });
  const f = await findProblems(facts([], [pod("a", ["10.244.0.5"]), done, pod("c", ["10.244.0.5"])]), 30_000);
  assert.equal(f.problems, [], "10.244.0.5 on two pods: not an address of a berth pool; b is finished");
});

test("network-status counts as showing: two live pods, one address, one duplicate naming the pod to restart", async () => {
  const status = JSON.stringify([{ name: "ns/net", interface: "net1", ips: ["10.9.0.3"] }]);
  const f = await findProblems(
    facts([claim("10.9.0.3", "a")], [pod("a", ["10.9.0.3"]), pod("b", [], { annotations: { "k8s.v1.cni.cncf.io/network-status": status } })]),
    30_000,
  );
  assert.equal(kinds(f.problems), ["duplicate-address 10.9.0.3"]);
  assert.equal(f.problems[0].pods, ["ns/a", "ns/b"]);
  assert.match(f.problems[0].action, "Restart ns/b");
  assert.not.match(f.problems[0].action, "Restart ns/a");
});

test("count-drift only while a controller leads; outside-pool for an excluded address", async () => {
  const ep = { namespace: "ns", name: "a", entries: [{ interface: "eth0", podUID: "uid-a", addresses: ["10.9.0.10"] }] };
  const base = facts([claim("10.9.0.10", "a")], [pod("a", ["10.9.0.10"])], [ep]);
  assert.equal(kinds((await findProblems(base, 30_000)).problems), ["outside-pool 10.9.0.10"]);
  const led = await findProblems({ ...base, controllerLeads: true }, 30_000);
  assert.equal(kinds(sortProblems(led.problems)), ["outside-pool 10.9.0.10", "count-drift undefined"]);
});

test("sorted by kind in the documented order, then by address numerically", () => {
  const p = (kind: string, address?: string) => ({ kind, address, detail: "", action: "" }) as never;
  const sorted = sortProblems([
    p("count-drift"),
    p("missing-claim", "10.0.0.10"),
    p("missing-claim", "10.0.0.9"),
    p("duplicate-address", "fd00::1"),
    p("duplicate-address", "10.0.0.2"),
  ]);
  assert.equal(kinds(sorted), [
    "duplicate-address 10.0.0.2",
    "duplicate-address fd00::1",
    "missing-claim 10.0.0.9",
    "missing-claim 10.0.0.10",
    "count-drift undefined",
  ]);
});

test.run();
