/** adopt's plan and writes against an in-memory API: the cases the cluster test does not reach. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { applyPlan } from "../../../plugin/adopt/apply.ts";
import { makePlan } from "../../../plugin/adopt/plan.ts";
import type { SourceRead, SourceRecord } from "../../../plugin/adopt/source-record.ts";
import type { AdoptApi } from "../../../plugin/kube/adopt-client.ts";
import { ADOPTED_FROM_LABEL, POOL_LABEL } from "../../../plugin/kube/crd.ts";
import type { ClaimObject } from "../../../plugin/kube/kube-api.ts";
import { FakeKube } from "../../support/fake-kube.ts";

const opts = { source: "whereabouts" as const, defaultInterface: "net1" };

function kube(): FakeKube {
  const k = new FakeKube();
  k.addPool("p", { subnet: "10.6.195.0/24", ips: ["10.6.195.1-10.6.195.20"] });
  return k;
}

const rec = (address: string, name: string, extra: Partial<SourceRecord> = {}): SourceRecord => ({
  address,
  family: 4,
  namespace: "a",
  name,
  containerId: `c-${name}`,
  from: "test",
  ...extra,
});
const read = (...records: SourceRecord[]): SourceRead => ({ records, reserved: [], ranges: [] });

function claim(address: string, name: string, uid: string, labels: Record<string, string> = {}): ClaimObject {
  return {
    metadata: { name: `v4-${address.replace(/\./g, "-")}`, labels: { [POOL_LABEL]: "p", ...labels } },
    spec: {
      address,
      ipVersion: 4,
      pool: "p",
      podNamespace: "a",
      podName: name,
      podUID: uid,
      containerID: "c",
      interface: "net1",
      node: "n1",
      claimedAt: new Date().toISOString(),
    },
  };
}

test("one pod, two addresses of a family, no interface recorded: the second is a conflict, not a second entry on net1", async () => {
  const k = kube();
  k.addPod("a", "x");
  const plan = await makePlan(k as unknown as AdoptApi, read(rec("10.6.195.1", "x"), rec("10.6.195.2", "x")), opts);
  assert.equal(
    plan.plan.map((i) => `${i.address} ${i.interface} ${i.action}`),
    ["10.6.195.1 net1 adopt", "10.6.195.2 net1 conflict"],
  );
  assert.match(plan.plan[1].reason, /already gets 10\.6\.195\.1 on net1/);
});

test("an adopted claim of an earlier incarnation moves to the running one; berth's own claim of this pod is left to berth", async () => {
  const k = kube();
  const x = k.addPod("a", "x");
  const y = k.addPod("a", "y");
  await k.createClaim(claim("10.6.195.1", "x", "old-uid", { [ADOPTED_FROM_LABEL]: "whereabouts" }));
  await k.createClaim(claim("10.6.195.2", "y", "older-uid"));
  const api = k as unknown as AdoptApi;
  const plan = await makePlan(api, read(rec("10.6.195.1", "x"), rec("10.6.195.2", "y")), opts);
  assert.equal(
    plan.plan.map((i) => `${i.address} ${i.action}`),
    ["10.6.195.1 adopt", "10.6.195.2 skip"],
  );
  await applyPlan(api, plan, "whereabouts");
  assert.is((await k.getClaim("v4-10-6-195-1"))!.spec.podUID, x.metadata.uid, "the claim names the running pod now");
  assert.is((await k.getClaim("v4-10-6-195-2"))!.spec.podUID, "older-uid", "berth's own claim untouched");
  assert.is((await k.getEndpoint("a", "y")) === undefined, true, "no endpoint written for berth's own claim");
  assert.ok(y);
});

test("apply: a claim taken meanwhile for the same pod is a skip, for another pod a conflict; nothing overwritten", async () => {
  const k = kube();
  k.addPod("a", "x");
  k.addPod("a", "y");
  const api = k as unknown as AdoptApi;
  const plan = await makePlan(api, read(rec("10.6.195.1", "x"), rec("10.6.195.2", "y")), opts);
  // Between plan and apply: berth's ADD takes .1 for x itself, and .2 for another pod.
  await k.createClaim(claim("10.6.195.1", "x", k.pods.get("a/x")!.metadata.uid!));
  const other = await k.createClaim(claim("10.6.195.2", "z", "uid-z"));
  const done = await applyPlan(api, plan, "whereabouts");
  assert.equal(
    done.map((i) => `${i.address} ${i.action}`),
    ["10.6.195.1 skip", "10.6.195.2 conflict"],
  );
  assert.is((await k.getClaim("v4-10-6-195-2"))!.metadata.resourceVersion, other.metadata.resourceVersion);
  assert.not.ok("write" in done[0], "the printed plan carries no write");
});

test("gone holders: a plain pod is skipped, a member its set keeps is adopted with the recorded UID", async () => {
  const k = kube();
  k.statefulSets.set("a/db", { metadata: { name: "db", namespace: "a", uid: "set-uid" }, spec: { replicas: 2 } });
  const plan = await makePlan(
    k as unknown as AdoptApi,
    read(rec("10.6.195.1", "db-1", { podUid: "u1" }), rec("10.6.195.2", "db-2"), rec("10.6.195.3", "q")),
    opts,
  );
  assert.equal(
    plan.plan.map((i) => `${i.address} ${i.action}`),
    ["10.6.195.1 adopt", "10.6.195.2 skip", "10.6.195.3 skip"],
  );
  const w = (plan.plan[0] as { write?: { claim: ClaimObject } }).write!;
  assert.equal([w.claim.spec.statefulSet, w.claim.spec.podUID, w.claim.spec.node], ["db", "u1", "unknown"]);
});

test.run();
