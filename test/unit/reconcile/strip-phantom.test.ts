/**
 * stripPhantom (plugin/reconcile/endpoint-repair.ts) against an ADD that
 * takes the address again while it runs: the ADD creates its claim, then
 * writes its endpoint entry, right after the repair's first read. The
 * binding must survive whichever read comes first.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ControllerApi } from "../../../plugin/kube/controller-api.ts";
import type { ClaimObject, EndpointObject } from "../../../plugin/kube/kube-api.ts";
import { KubeConflictError } from "../../../plugin/kube/kube-errors.ts";
import { stripPhantom } from "../../../plugin/reconcile/endpoint-repair.ts";

const ADDRESS = "10.9.0.7";

function endpoint(rv: string): EndpointObject {
  return {
    metadata: { name: "db-0", namespace: "ns", uid: "ep1", resourceVersion: rv },
    spec: {
      podUID: "uid-2",
      node: "n1",
      containerID: "c2",
      ownerControllerType: "StatefulSet",
      ownerControllerName: "db",
      ips: [{ interface: "net1", podUID: "uid-2", ipv4: `${ADDRESS}/24`, ipv4Pool: "p" }],
    },
  } as EndpointObject;
}

const claim: ClaimObject = {
  metadata: { name: "v4-10-9-0-7", uid: "cl2", resourceVersion: "11" },
  spec: {
    address: ADDRESS,
    ipVersion: 4,
    pool: "p",
    podNamespace: "ns",
    podName: "db-0",
    podUID: "uid-2",
    containerID: "c2",
    interface: "net1",
    node: "n1",
    claimedAt: "2026-12-08T00:00:00Z",
  },
} as ClaimObject;

/**
 * An API where the endpoint lists the address from an earlier write (rv 5)
 * and its claim is gone; the first read of either kind lets the ADD run:
 * claim created, endpoint rewritten (rv 12).
 */
function racingApi() {
  const state = { claim: undefined as ClaimObject | undefined, ep: endpoint("5"), added: false, writes: [] as string[] };
  const addRuns = () => {
    if (state.added) return;
    state.added = true;
    state.claim = claim;
    state.ep = endpoint("12");
  };
  const api = {
    getClaim: async () => {
      const c = state.claim;
      addRuns();
      return c;
    },
    getEndpoint: async () => {
      const e = state.ep;
      addRuns();
      return e;
    },
    updateEndpoint: async (ep: EndpointObject) => {
      if (ep.metadata.resourceVersion !== state.ep.metadata.resourceVersion) throw new KubeConflictError("endpoint changed");
      state.writes.push("update");
      state.ep = ep;
      return ep;
    },
    deleteEndpoint: async (_ns: string, _name: string, _uid: string, rv?: string) => {
      if (rv !== state.ep.metadata.resourceVersion) throw new KubeConflictError("endpoint changed");
      state.writes.push("delete");
      return true;
    },
  } as unknown as ControllerApi;
  return { api, state };
}

const log = { debug() {}, info() {}, warn() {}, error() {} };
const metrics = { released() {}, repaired() {}, pool() {}, forgetPool() {} };

test("an ADD that takes the address again during the strip keeps its binding", async () => {
  const { api, state } = racingApi();
  const stripped = await stripPhantom(api, { namespace: "ns", name: "db-0", address: ADDRESS }, log, metrics);
  assert.is(stripped, false, "nothing stripped: the address is the pod's again");
  assert.equal(state.writes, []);
  assert.ok(
    state.ep.spec.ips.some((i) => i.ipv4 === `${ADDRESS}/24`),
    "the entry stays",
  );
});

test.run();
