import { test } from "uvu";
import * as assert from "uvu/assert";
import { Deadline } from "../../../plugin/cluster/deadline.ts";
import { ordinalInRange, statefulSetMembership } from "../../../plugin/cluster/statefulset.ts";
import { parseAddress } from "../../../plugin/ipam/ip.ts";
import { matchesSelector } from "../../../plugin/ipam/label-selector.ts";
import { claimName } from "../../../plugin/kube/claim-name.ts";

test("claim names are the address, valid object names for both families", () => {
  const n = (s: string) => {
    const a = parseAddress(s)!;
    return claimName(a.family, a.value);
  };
  assert.is(n("10.6.168.101"), "v4-10-6-168-101");
  assert.is(n("fd00:6::101"), "v6-fd00-6-0-0-0-0-0-101");
  assert.is(n("::"), "v6-0-0-0-0-0-0-0-0");
  for (const s of ["::1", "fd00::", "2001:db8::ffff"]) assert.match(n(s), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, s);
  assert.is.not(n("fd00::1"), n("fd00:0:0:0:0:0:0:10"));
});

test("label selectors: matchLabels and every operator", () => {
  const labels = { app: "db", tier: "backend" };
  assert.ok(matchesSelector({}, labels));
  assert.ok(matchesSelector({ matchLabels: { app: "db" } }, labels));
  assert.not.ok(matchesSelector({ matchLabels: { app: "web" } }, labels));
  assert.ok(matchesSelector({ matchExpressions: [{ key: "tier", operator: "In", values: ["backend", "x"] }] }, labels));
  assert.not.ok(matchesSelector({ matchExpressions: [{ key: "tier", operator: "NotIn", values: ["backend"] }] }, labels));
  assert.ok(matchesSelector({ matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] }, labels));
  assert.ok(matchesSelector({ matchExpressions: [{ key: "app", operator: "Exists" }] }, labels));
  assert.not.ok(matchesSelector({ matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, labels));
  assert.not.ok(matchesSelector({ matchExpressions: [{ key: "app", operator: "Gt", values: ["1"] }] }, labels), "unknown operators never match");
  assert.not.ok(matchesSelector({ matchLabels: { app: "db" } }, undefined));
});

test("StatefulSet membership comes from the controller owner reference, not the name", () => {
  const pod = (name: string, owner?: object) => ({ metadata: { name, ownerReferences: owner ? [owner as never] : undefined } });
  const sts = { apiVersion: "apps/v1", kind: "StatefulSet", name: "test-sts", uid: "u", controller: true };
  assert.equal(statefulSetMembership(pod("test-sts-2", sts)), { statefulSet: "test-sts", ordinal: 2, ownerUid: "u" }, "as the reference claims it");
  assert.is(statefulSetMembership(pod("test-sts-2")), undefined, "a bare pod named like a member is not one");
  assert.is(statefulSetMembership(pod("test-sts-2", { ...sts, controller: false })), undefined);
  assert.is(statefulSetMembership(pod("test-sts-2", { ...sts, kind: "ReplicaSet" })), undefined);
  assert.is(statefulSetMembership(pod("other-2", sts)), undefined);
  assert.is(statefulSetMembership(pod("test-sts-02", sts)), undefined);
});

test("replica range honours spec.ordinals.start and deletion", () => {
  const sts = (replicas?: number, start?: number, deleting = false) => ({
    metadata: { name: "s", ...(deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}) },
    spec: { replicas, ...(start === undefined ? {} : { ordinals: { start } }) },
  });
  assert.ok(ordinalInRange(sts(2), 1));
  assert.not.ok(ordinalInRange(sts(2), 2));
  assert.ok(ordinalInRange(sts(undefined), 0), "replicas defaults to 1");
  assert.not.ok(ordinalInRange(sts(0), 0));
  assert.ok(ordinalInRange(sts(2, 5), 6));
  assert.not.ok(ordinalInRange(sts(2, 5), 1));
  assert.not.ok(ordinalInRange(sts(3, 0, true), 0), "a StatefulSet being deleted keeps nothing");
});

test("the ADD's budget: no new step once it is spent, but an ADD that has taken everything (commit) finishes", async () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const stopped = new Deadline(30, "https://api");
  const err = await stopped
    .race(async () => {
      await sleep(60); // a step in flight when the budget ends finishes first
      stopped.check(); // the next one does not start
      return "done";
    })
    .catch((e: Error) => e);
  assert.instance(err, Error);
  assert.match((err as Error).message, "gave up after 0.03 s");
  const finished = new Deadline(30, "https://api");
  const result = await finished.race(async () => {
    await sleep(60);
    finished.commit(); // every address taken in that step
    finished.check();
    await sleep(10);
    return "done";
  });
  assert.is(result, "done");
  const within = new Deadline(1000, "https://api");
  assert.is(await within.race(async () => (within.check(), "quick")), "quick");
});

test.run();
