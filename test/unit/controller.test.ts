/** The controller's clocks and leadership, on fakes: server-time ages, the lease as client-go keeps it, writes guarded. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { guardWrites } from "../../plugin/controller/guarded-api.ts";
import { LeaderElector, NotLeaderError } from "../../plugin/controller/leader.ts";
import { takeSnapshot } from "../../plugin/controller/scan-snapshot.ts";
import { endpointFromRecord, endpointRecord, podFromRecord, podRecord, slimClaim } from "../../plugin/controller/slim.ts";
import type { ControllerApi, LeaseObject } from "../../plugin/kube/controller-api.ts";
import type { ClaimObject } from "../../plugin/kube/kube-api.ts";
import { KubeConflictError } from "../../plugin/kube/kube-errors.ts";
import { namesObject, ServerClock } from "../../plugin/kube/kube-request.ts";
import { addWindowMs, LEGACY_ADD_DEADLINE_SECONDS, lastWriteMs, withObservation } from "../../plugin/reconcile/claim-age.ts";
import { isKind } from "../../plugin/support/errors.ts";

const t = suite("controller");

const claim = (meta: Partial<ClaimObject["metadata"]>, spec: Partial<ClaimObject["spec"]> = {}): ClaimObject => ({
  metadata: { name: "v4-10-0-0-1", ...meta },
  spec: {
    address: "10.0.0.1",
    ipVersion: 4,
    pool: "p",
    podNamespace: "ns",
    podName: "a",
    podUID: "u",
    containerID: "c",
    interface: "eth0",
    node: "n",
    claimedAt: "2000-01-01T00:00:00Z",
    ...spec,
  },
});

t("a claim's age: the latest server-set time (creation, managedFields) plus a second; never claimedAt", () => {
  const c = claim({ creationTimestamp: "2026-12-01T10:00:00Z", managedFields: [{ time: "2026-12-01T10:05:00Z" }, { time: "2026-12-01T10:01:00Z" }] });
  assert.is(lastWriteMs(c), Date.parse("2026-12-01T10:05:01Z"));
  assert.is(lastWriteMs(claim({})), undefined, "no server time: unknown");
  assert.is(lastWriteMs(slimClaim(c)), lastWriteMs(c), "the slim copy keeps it");
  assert.is(slimClaim(c).metadata.managedFields, undefined, "without the managedFields themselves");
  // Re-taken (an update by the same manager does not move its time): the controller's first sight of the generation counts.
  const seen = withObservation(c, Date.parse("2026-12-01T10:07:00.500Z"));
  assert.is(lastWriteMs(seen), Date.parse("2026-12-01T10:07:01.500Z"));
  assert.is(
    lastWriteMs(withObservation(seen, Date.parse("2026-12-01T10:06:00Z"))),
    Date.parse("2026-12-01T10:06:01Z"),
    "the observation replaces an earlier one",
  );
  assert.is(addWindowMs(claim({}, { addDeadlineSeconds: 20 }), 2000), 20_000);
  assert.is(addWindowMs(claim({}, { addDeadlineSeconds: 20 }), 30_000), 30_000, "never shorter than --add-timeout-seconds");
  assert.is(addWindowMs(claim({}), 2000), LEGACY_ADD_DEADLINE_SECONDS * 1000, "a 0.3 claim: 615 s");
});

t("a full scan's pod and endpoint records give back what the judgement reads", () => {
  const pod = {
    metadata: {
      name: "db-1",
      namespace: "ns",
      uid: "u1",
      deletionTimestamp: "2026-12-01T10:00:00Z",
      annotations: { big: "x".repeat(1000), "kubernetes.io/config.mirror": "h" },
      ownerReferences: [
        { apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "r" },
        { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "s", controller: true },
      ],
    },
    spec: { nodeName: "node2" },
    status: { phase: "Running" },
  };
  assert.equal(podFromRecord("ns", "db-1", podRecord(pod)), {
    metadata: {
      name: "db-1",
      namespace: "ns",
      uid: "u1",
      deletionTimestamp: "2026-12-01T10:00:00Z",
      annotations: { "kubernetes.io/config.mirror": "h" },
    },
    spec: { nodeName: "node2" },
    status: { phase: "Running" },
  });
  assert.equal(podFromRecord("ns", "p", podRecord({ metadata: { name: "p", namespace: "ns", uid: "u" } })), {
    metadata: { name: "p", namespace: "ns", uid: "u" },
    spec: {},
    status: {},
  });
  const ep = {
    metadata: { name: "db-1", namespace: "ns" },
    spec: {
      podUID: "u1",
      node: "n",
      ownerControllerType: "None" as const,
      ips: [
        { interface: "eth0", ipv4: "10.0.0.1/16", ipv6: "fd00::1/64" },
        { interface: "net1", ipv4: "10.1.0.1/16" },
      ],
    },
  };
  assert.equal(endpointFromRecord("ns", "db-1", endpointRecord(ep)).spec.ips, [
    { interface: "eth0", ipv4: "10.0.0.1/16", ipv6: "fd00::1/64" },
    { interface: "net1", ipv4: "10.1.0.1/16" },
  ]);
  assert.equal(endpointFromRecord("ns", "db-1", endpointRecord({ ...ep, spec: { ...ep.spec, ips: [{ interface: "eth0", ipv6: "fd00::1/64" }] } })).spec.ips, [
    { interface: "eth0", ipv6: "fd00::1/64" },
  ]);
});

t("the server clock: the largest lower bound from Date headers, never ahead of the server", () => {
  const clock = new ServerClock();
  assert.not.ok(clock.known);
  // The server is 1 h ahead; its Date header truncates to the second.
  const ahead = 3_600_000;
  const mono = performance.now();
  const serverAt = (m: number) => Date.now() + ahead + (m - performance.now());
  clock.observe(new Date(Math.floor(serverAt(mono) / 1000) * 1000).toUTCString(), mono);
  assert.ok(clock.known);
  const est = clock.now();
  const truth = serverAt(performance.now());
  assert.ok(est <= truth + 5 && est > truth - 1100, `estimate ${est - truth} ms off`);
  clock.observe("not a date", performance.now());
  assert.ok(clock.now() >= est, "a bad header changes nothing");
});

t("a 404 means 'no such object' only when its Status names one; a kind not served (yet) is something else", () => {
  const missing = { kind: "Status", apiVersion: "v1", status: "Failure", reason: "NotFound", code: 404 };
  assert.ok(namesObject(JSON.stringify({ ...missing, message: 'spiderippools "a" not found', details: { name: "a", kind: "spiderippools" } })));
  assert.not.ok(namesObject(JSON.stringify({ ...missing, message: "the server could not find the requested resource", details: {} })));
  assert.not.ok(namesObject("404 page not found\n"));
  assert.not.ok(namesObject(""));
});

/** A Lease on a fake API server, with a settable monotonic clock per replica. */
function leaseServer() {
  let lease: LeaseObject | undefined;
  let rv = 0;
  const api = {
    getLease: async () => (lease ? structuredClone(lease) : undefined),
    createLease: async (l: LeaseObject) => {
      if (lease) throw new KubeConflictError("exists");
      lease = { ...structuredClone(l), metadata: { ...l.metadata, resourceVersion: String(++rv) } };
      return structuredClone(lease);
    },
    updateLease: async (l: LeaseObject) => {
      if (!lease || l.metadata.resourceVersion !== lease.metadata.resourceVersion) throw new KubeConflictError("stale");
      lease = { ...structuredClone(l), metadata: { ...l.metadata, resourceVersion: String(++rv) } };
      return structuredClone(lease);
    },
  } as unknown as ControllerApi;
  return { api, lease: () => lease, set: (l: LeaseObject) => (lease = { ...l, metadata: { ...l.metadata, resourceVersion: String(++rv) } }) };
}

t("leadership: a standby waits a lease duration from when it saw the last change, whatever renewTime says", async () => {
  const s = leaseServer();
  let now = 0;
  const b = new LeaderElector(s.api, "kube-system", "l", "b", undefined, () => now);
  // A holder whose clock is an hour behind keeps renewing: renewTime looks ancient, but the lease changes.
  const ghost = (renew: string) =>
    s.set({
      metadata: { name: "l", namespace: "kube-system", resourceVersion: s.lease()?.metadata.resourceVersion },
      spec: { holderIdentity: "ghost", leaseDurationSeconds: 8, renewTime: renew },
    });
  ghost("2000-01-01T00:00:00.000000Z");
  assert.not.ok(await b.tick(), "does not take a lease it has just seen change");
  for (let i = 1; i <= 5; i++) {
    now += 2000;
    ghost(`2000-01-01T00:00:0${i}.000000Z`);
    assert.not.ok(await b.tick(), `renewed by the holder: still the holder's (${now} ms)`);
  }
  now += 7000;
  assert.not.ok(await b.tick(), "7 s without a change: not yet");
  now += 1500;
  assert.ok(await b.tick(), "8 s without a change: taken");
  assert.is(s.lease()!.spec.holderIdentity, "b");
  assert.is(s.lease()!.spec.leaseTransitions, 1);
});

t("leadership: the holder leads only until renewDeadline after its last renewal; every guarded write checks", async () => {
  const s = leaseServer();
  let now = 0;
  const a = new LeaderElector(s.api, "kube-system", "l", "a", undefined, () => now);
  assert.ok(await a.tick());
  const term = a.term;
  const sent: string[] = [];
  const api = guardWrites({ deleteClaim: async () => (sent.push("deleteClaim"), true), getClaim: async () => undefined } as unknown as ControllerApi, (w) =>
    a.check(w),
  );
  await api.deleteClaim("x", "u");
  assert.equal(sent, ["deleteClaim"]);
  now += 4900;
  assert.ok(a.isLeader);
  now += 200;
  assert.not.ok(a.isLeader, "5 s without a renewal: stops acting, before a standby (8 s) may take over");
  try {
    await api.deleteClaim("x", "u");
    assert.unreachable("sent while not leading");
  } catch (err) {
    assert.ok(isKind(err, NotLeaderError), String(err));
  }
  assert.equal(sent, ["deleteClaim"], "nothing sent");
  assert.is(await api.getClaim("x"), undefined, "reads pass");
  assert.ok(await a.tick(), "renewed: leads again (nobody took over)");
  assert.ok(a.term > term, "in a new term: what it was doing before the gap is void");
  // Someone else takes the lease meanwhile: lost at the next round.
  s.set({
    metadata: { name: "l", namespace: "kube-system", resourceVersion: s.lease()!.metadata.resourceVersion },
    spec: { holderIdentity: "b", leaseDurationSeconds: 8 },
  });
  assert.not.ok(await a.tick());
  assert.not.ok(a.isLeader);
});

t("a scan holds the controller's own copy of an unchanged claim, and a fresh one of a changed claim", async () => {
  const claim = (name: string, rv: string, uid = `uid-${name}`): ClaimObject => ({
    metadata: {
      name,
      uid,
      resourceVersion: rv,
      creationTimestamp: "2026-12-02T10:00:00Z",
      managedFields: [{ manager: "berth", time: "2026-12-02T10:00:00Z" }],
    },
    spec: {
      address: "10.0.0.1",
      ipVersion: 4,
      pool: "p",
      podNamespace: "ns",
      podName: name,
      podUID: "pu",
      containerID: "c",
      interface: "eth0",
      node: "n",
      claimedAt: "2026-12-02T10:00:00Z",
    },
  });
  const listed = [claim("same", "5"), claim("newer", "9"), claim("recreated", "5", "uid-other"), claim("unknown", "5")];
  const mine = new Map([
    ["same", slimClaim(claim("same", "5"))],
    ["newer", slimClaim(claim("newer", "7"))],
    ["recreated", slimClaim(claim("recreated", "5"))],
  ]);
  const none = async () => 1;
  const api = {
    listAllClaims: async (_size: number, onPage: (page: ClaimObject[]) => void) => (onPage(listed), 1),
    listAllPods: none,
    listAllStatefulSets: none,
    listAllEndpoints: none,
    listAllNodes: none,
    listPools: async () => [],
  } as unknown as ControllerApi;
  const snap = await takeSnapshot(api, 500, (name) => mine.get(name));
  const held = snap.claims!;
  assert.is(held.length, 4);
  assert.ok(held[0] === mine.get("same"), "same uid and resourceVersion: the controller's own copy, not a second one");
  assert.ok(held[1] !== mine.get("newer"), "a newer resourceVersion: a fresh copy");
  assert.is(held[1].metadata.resourceVersion, "9");
  assert.ok(held[2] !== mine.get("recreated"), "another uid (deleted and created again): a fresh copy");
  assert.is(held[2].metadata.uid, "uid-other");
  assert.equal(held[3], slimClaim(listed[3]), "one the controller did not know: slim");
  assert.is(held[3].metadata.managedFields, undefined, "slim: no managedFields kept");
});

t.run();
