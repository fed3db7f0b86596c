/**
 * rebuildEntry (plugin/reconcile/endpoint-repair.ts) when a pod name has
 * more than one claim on an interface and its endpoint is lost: only the
 * binding may be written back, or the controller would judge the right
 * claim superseded and release it.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ControllerApi } from "../../../plugin/kube/controller-api.ts";
import type { ClaimObject, EndpointObject, PodObject } from "../../../plugin/kube/kube-api.ts";
import { rebuildEntry } from "../../../plugin/reconcile/endpoint-repair.ts";

function claim(address: string, o: { uid?: string; set?: string } = {}): ClaimObject {
  return {
    metadata: { name: `v4-${address.replace(/\./g, "-")}`, uid: `c-${address}`, resourceVersion: "3" },
    spec: {
      address,
      ipVersion: 4,
      pool: "p",
      podNamespace: "ns",
      podName: "db-0",
      podUID: o.uid ?? "uid-1",
      containerID: "c",
      interface: "net1",
      node: "n1",
      claimedAt: "2026-12-08T00:00:00Z",
      ...(o.set ? { statefulSet: o.set } : {}),
    },
  } as ClaimObject;
}

function pod(uid: string, shows: string[]): PodObject {
  const status = JSON.stringify([{ name: "ns/net", interface: "net1", ips: shows }]);
  return {
    metadata: { name: "db-0", namespace: "ns", uid, annotations: shows.length ? { "k8s.v1.cni.cncf.io/network-status": status } : {} },
    spec: { nodeName: "n1" },
    status: { phase: "Running" },
  } as PodObject;
}

/** An API with the pod given, no endpoint (lost), and the pool; records the endpoints it creates. */
function api(p: PodObject | undefined) {
  const created: EndpointObject[] = [];
  const a = {
    getPod: async () => p,
    getPool: async () => ({ metadata: { name: "p" }, spec: { subnet: "10.9.0.0/16", ips: ["10.9.0.1-10.9.0.9"] } }),
    getEndpoint: async () => created[0],
    getStatefulSet: async () => undefined,
    createEndpoint: async (ep: EndpointObject) => {
      created.push({ ...ep, metadata: { ...ep.metadata, uid: "ep", resourceVersion: "1" } });
      return created[0];
    },
    recordEvent: async () => undefined,
  } as unknown as ControllerApi;
  return { api: a, created };
}

const log = { debug() {}, info() {}, warn() {}, error() {} };
const metrics = { released() {}, repaired() {}, pool() {}, forgetPool() {} };
const written = (created: EndpointObject[]) => created.flatMap((e) => e.spec.ips.map((i) => i.ipv4));

test("one claim: written back", async () => {
  const x = claim("10.9.0.1", { set: "db" });
  const { api: a, created } = api(pod("uid-1", []));
  assert.is(await rebuildEntry(a, x, log, metrics, [x]), "written");
  assert.equal(written(created), ["10.9.0.1/16"]);
});

test("a member's binding and a killed ADD's claim: the one the pod shows is written back, the other is not", async () => {
  const x = claim("10.9.0.1", { set: "db" });
  const y = claim("10.9.0.2", { set: "db" });
  let t = api(pod("uid-1", ["10.9.0.1/16"]));
  assert.is(await rebuildEntry(t.api, y, log, metrics, [x, y]), "unneeded");
  assert.equal(t.created, [], "the claim the pod does not show is not written back");
  t = api(pod("uid-1", ["10.9.0.1/16"]));
  assert.is(await rebuildEntry(t.api, x, log, metrics, [x, y]), "written");
  assert.equal(written(t.created), ["10.9.0.1/16"]);
});

test("two claims and a pod that shows neither: none is written back", async () => {
  const x = claim("10.9.0.1", { set: "db" });
  const y = claim("10.9.0.2", { set: "db" });
  for (const c of [x, y]) {
    const t = api(pod("uid-1", []));
    assert.is(await rebuildEntry(t.api, c, log, metrics, [x, y]), "unneeded");
    assert.equal(t.created, []);
  }
});

test("a forger's claim beside a gone member's: the member's is written back, the forger's never", async () => {
  const x = claim("10.9.0.1", { set: "db", uid: "uid-member" });
  const y = claim("10.9.0.2", { uid: "uid-forger" });
  let t = api(pod("uid-forger", ["10.9.0.2/16"]));
  assert.is(await rebuildEntry(t.api, y, log, metrics, [x, y]), "unneeded", "even though the forger shows it");
  assert.equal(t.created, []);
  t = api(pod("uid-forger", ["10.9.0.2/16"]));
  assert.is(await rebuildEntry(t.api, x, log, metrics, [x, y]), "written");
  assert.equal(written(t.created), ["10.9.0.1/16"]);
});

test.run();
