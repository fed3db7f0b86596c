/**
 * `berth controller` under the conditions where releasing an address would
 * put it on two pods (issue 8, windows 1, 5, 6, 7; its windows 2 and 11, the
 * Terminating and static pods, are issue 17's now: hold-safety.test.ts), on the test control
 * plane, as a real process with its own ServiceAccount (controller-env.ts):
 *
 * - half-finished ADDs are judged by the API server's clock and the claim's
 *   recorded deadline (a node clock an hour behind changes nothing; a claim
 *   without a deadline, from a 0.3 plugin, gets 615 s; a re-taken claim's
 *   window starts again at its update);
 * - a pool deleted while no controller led keeps its finalizer while claims
 *   exist, however early pool events reach a new leader;
 * - leadership: renewed during a long scan; a leader frozen mid-scan writes
 *   nothing once a standby has taken over; a holder whose clock is behind is
 *   not robbed of a lease it keeps renewing;
 * - full scans in pages (--list-page-size 2) and a failing list that voids
 *   only the judgements needing it.
 *
 * Address range: 10.6.178.1-250 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster controller-safety.test.ts
 */
import { randomBytes } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BERTH_API_VERSION, BERTH_GROUP, CLAIM_KIND, labelValue, POOL_LABEL } from "../../plugin/kube/crd.ts";
import type { ClaimObject, EndpointObject } from "../../plugin/kube/kube-api.ts";
import {
  admin,
  apply,
  claimNameOf,
  claimOf,
  deletePods,
  deletePool,
  getPool,
  inBatches,
  patchPool,
  path,
  podOf,
  poolManifest,
  poolStatus,
  waitFor,
  waitForAllocated,
} from "../support/cluster/cluster-env.ts";
import {
  add,
  denyController,
  lease,
  POOL_FINALIZER,
  plainPod,
  poolFinalizers,
  sleep,
  startController,
  waitForAsync,
  waitReleased,
  withControllers,
} from "../support/cluster/controller-env.ts";
import type { Stored } from "../support/kube/stored.ts";

const S = suite("cluster: controller safety");

/** A claim written as admin: a pod's ADD as the API server sees it, with whatever the node wrote. */
function claimBody(address: string, pool: string, ns: string, pod: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
    kind: CLAIM_KIND,
    metadata: { name: claimNameOf(address), labels: { [POOL_LABEL]: labelValue(pool) } },
    spec: {
      address,
      ipVersion: 4,
      pool,
      podNamespace: ns,
      podName: pod,
      podUID: `uid-${pod}`,
      containerID: randomBytes(32).toString("hex"),
      interface: "eth0",
      node: "node1",
      claimedAt: new Date().toISOString(),
      ...spec,
    },
  };
}

async function createClaim(address: string, pool: string, ns: string, pod: string, spec: Record<string, unknown> = {}) {
  return admin.create<Stored<ClaimObject>>(path("berthipclaims"), claimBody(address, pool, ns, pod, spec));
}

/** The endpoint a finished ADD writes: pod ns/name bound to `address`. */
async function createEndpoint(ns: string, name: string, uid: string, address: string, pool: string) {
  return admin.create<Stored<EndpointObject>>(path("berthendpoints", { ns }), {
    apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
    kind: "BerthEndpoint",
    metadata: { name, namespace: ns },
    spec: { podUID: uid, node: "node1", ownerControllerType: "None", ips: [{ interface: "eth0", ipv4: `${address}/16`, ipv4Pool: pool }] },
  });
}

// ---------------------------------------------------------------- window 1: half-finished ADDs by server time

const NS_AGE = "berth-safe-age";
const P_AGE = "safe-age";

S(
  "half-finished ADDs: judged by the API server's clock and the claim's recorded deadline, not the node's claimedAt; a claim without a deadline (0.3) waits 615 s; a re-taken claim's window restarts",
  () =>
    withControllers({ tag: "safeage", namespaces: [NS_AGE], pools: [P_AGE] }, async () => {
      apply(poolManifest(P_AGE, { subnet: "10.6.0.0/16", ips: ["10.6.178.1-10.6.178.10"] }));
      const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
      // Never bound in any endpoint; the node that wrote them has a clock an hour behind.
      const t0 = Date.now();
      await createClaim("10.6.178.1", P_AGE, NS_AGE, "slow-a", { claimedAt: hourAgo, addDeadlineSeconds: 20 });
      await createClaim("10.6.178.2", P_AGE, NS_AGE, "old-plugin", { claimedAt: hourAgo });
      const retaken = await createClaim("10.6.178.3", P_AGE, NS_AGE, "retaken", { claimedAt: hourAgo, addDeadlineSeconds: 8 });
      const ctl = await startController({ identity: "ctl-age", resyncSeconds: 3, addTimeoutSeconds: 2 });
      await ctl.waitLeader();

      // 5 s in: a new sandbox re-takes "retaken" (an update: its window starts again from there).
      await sleep(Math.max(0, t0 + 5000 - Date.now()));
      for (const a of ["10.6.178.1", "10.6.178.2", "10.6.178.3"]) {
        assert.ok(
          claimOf(a),
          `${a}'s claim still exists 5 s after it was written (deadlines 20 s, 615 s, 8 s), although claimedAt is an hour ago and --add-timeout-seconds is 2\n${ctl.logTail()}`,
        );
      }
      const tUpdate = Date.now();
      await admin.replace(path("berthipclaims", { name: retaken.metadata.name }), {
        ...retaken,
        spec: { ...retaken.spec, containerID: randomBytes(32).toString("hex") },
      });

      await sleep(Math.max(0, t0 + 6500 - Date.now()));
      assert.ok(
        claimOf("10.6.178.1"),
        `slow-a's claim (deadline 20 s) still exists 6 s after it was written, although claimedAt is an hour ago and --add-timeout-seconds is 2\n${ctl.logTail()}`,
      );
      assert.ok(claimOf("10.6.178.2"), "the 0.3 claim still exists");
      assert.ok(claimOf("10.6.178.3"), "the re-taken claim still exists");
      await sleep(Math.max(0, t0 + 10_500 - Date.now()));
      assert.ok(claimOf("10.6.178.3"), `the re-taken claim still exists 10.5 s after creation (8 s deadline, but updated at 5 s)\n${ctl.logTail()}`);

      const retakenGone = await waitReleased("10.6.178.3", 15_000, ctl);
      console.error(`[safeage] re-taken claim released ${retakenGone - tUpdate} ms after its update (deadline 8 s)`);
      assert.ok(retakenGone - tUpdate >= 8000, `not before 8 s after its last write (${retakenGone - tUpdate} ms)`);
      const slowGone = await waitReleased("10.6.178.1", 35_000, ctl);
      // Its window counts from the controller's first sight of it (its first scan, once it led), on the controller's clock.
      const led = ctl.loggedAt("became leader")!;
      console.error(
        `[safeage] slow-a's claim released ${slowGone - t0} ms after it was written, ${slowGone - led} ms after the controller led (deadline 20 s)`,
      );
      assert.ok(slowGone - t0 >= 20_000, `not before its 20 s deadline (${slowGone - t0} ms)`);
      assert.ok(slowGone - led <= 20_000 + 2 * 3000 + 2000, `soon after it, from the controller's first sight (${slowGone - led} ms)`);
      const rel = await ctl.waitReleases((r) => r.pod.startsWith(`${NS_AGE}/`), 2);
      assert.equal(rel.map((r) => `${r.address} ${r.reason}`).sort(), ["10.6.178.1 half-finished-add", "10.6.178.3 half-finished-add"]);
      assert.ok(Date.now() - t0 > 10_000);
      assert.ok(claimOf("10.6.178.2"), `the claim without addDeadlineSeconds (a 0.3 plugin's) is kept past 10 s (615 s assumed)\n${ctl.logTail()}`);
    }),
);

// ---------------------------------------------------------------- window 5: the pool finalizer on an empty memory

const NS_FIN = "berth-safe-fin";
const P_FIN = "safe-fin";

S(
  "pool finalizer: a pool deleted while no controller leads keeps its finalizer while claims exist, though pool events reach the new leader before any full scan could list a claim",
  () =>
    withControllers({ tag: "safefin", namespaces: [NS_FIN], pools: [P_FIN] }, async (c) => {
      apply(poolManifest(P_FIN, { subnet: "10.6.0.0/16", ips: ["10.6.178.41-10.6.178.45"] }));
      const node1 = c.node("node1");
      const held = ["fin-a", "fin-b"].map((n) => add(c, node1, NS_FIN, n, plainPod(NS_FIN, n, "node1", P_FIN)));
      // The finalizer a controller put on it earlier; then the pool is deleted while no controller runs.
      patchPool(P_FIN, { metadata: { finalizers: [POOL_FINALIZER] } });
      deletePool(P_FIN);
      assert.ok(getPool(P_FIN)?.metadata.deletionTimestamp, `${P_FIN} is terminating, held by its finalizer`);

      // A new controller that cannot (yet) list or watch claims: its first full scan cannot finish, as on a big
      // cluster whose claims take long to list, while the pool changes often and its events keep coming.
      const allowClaims = await denyController("ipam.berth.dev", "berthipclaims", ["list", "watch"]);
      let touching = true;
      const touch = (async () => {
        for (let i = 0; touching; i++) {
          await admin
            .patch(path("spiderippools", { name: P_FIN }), { metadata: { annotations: { "berth-test/touch": String(i) } } }, "merge", [404])
            .catch(() => undefined);
          await sleep(50);
        }
      })();
      const ctl = await startController({ identity: "ctl-fin", resyncSeconds: 3 });
      try {
        await ctl.waitLeader();
        const until = Date.now() + 8000;
        while (Date.now() < until) {
          assert.ok(
            poolFinalizers(P_FIN)?.includes(POOL_FINALIZER),
            `${P_FIN} keeps ${POOL_FINALIZER} while ${held.map((h) => h.address).join(", ")} are claimed\n${ctl.logTail()}`,
          );
          await sleep(100);
        }
        await ctl.waitLog(/full scan: list failed/);
        // Claims can be listed again: the scans complete, and still find the pool in use.
        await allowClaims();
        await ctl.waitLog(/full scan done.*claims["=:]+\d/, 15_000);
        await ctl.waitScans(1);
        assert.ok(poolFinalizers(P_FIN)?.includes(POOL_FINALIZER), `still there after complete full scans\n${ctl.logTail()}`);
      } finally {
        touching = false;
        await touch;
      }
      for (const h of held) assert.ok(claimOf(h.address), `${h.name}'s claim is untouched`);
      await ctl.waitLog(/pool deletion waits for its addresses.*claimed["=:]+2/);

      // Its pods go: their addresses are released, then the pool.
      deletePods(
        NS_FIN,
        held.map((h) => h.name),
        { force: true },
      );
      for (const h of held) await waitReleased(h.address, 10_000, ctl);
      await waitFor(`${P_FIN} to be gone once empty\n${ctl.logTail()}`, () => !getPool(P_FIN), 10_000, 200);
    }),
);

// ---------------------------------------------------------------- window 6: leadership

const NS_LEAD = "berth-safe-lead";
const P_LEAD = "safe-lead";

/** `count` claims of pods that are gone, each listed in its pod's endpoint: each one a release (pod-deleted). */
async function gonePodClaims(ns: string, pool: string, first: number, count: number): Promise<string[]> {
  const addrs = Array.from({ length: count }, (_, i) => `10.6.178.${first + i}`);
  await inBatches(addrs, 16, async (a) => {
    const pod = `gone-${a.split(".")[3]}`;
    await createClaim(a, pool, ns, pod);
    await createEndpoint(ns, pod, `uid-${pod}`, a, pool);
  });
  return addrs;
}

S("leadership: a scan longer than the lease (paused 12 s mid-scan) keeps the lease: it is renewed on its own timer and the standby never leads", () =>
  withControllers({ tag: "safelong", namespaces: [NS_LEAD], pools: [P_LEAD] }, async () => {
    apply(poolManifest(P_LEAD, { subnet: "10.6.0.0/16", ips: ["10.6.178.101-10.6.178.104"] }));
    const addrs = await gonePodClaims(NS_LEAD, P_LEAD, 101, 4);
    const a = await startController({ identity: "ctl-long", resyncSeconds: 60, faults: "pause-scan=12" });
    await a.waitLeader();
    const b = await startController({ identity: "ctl-standby", resyncSeconds: 60 });
    await a.waitLog(/full scan paused/, 10_000);
    const renewals = new Set<string>();
    const pauseEnds = Date.now() + 11_000;
    while (Date.now() < pauseEnds) {
      const l = lease();
      assert.is(l?.spec.holderIdentity, "ctl-long", `the pausing leader keeps the lease during its long scan\n${a.logTail()}\n${b.logTail()}`);
      renewals.add(l!.spec.renewTime!);
      assert.is(await b.leader(), 0, "the standby does not lead");
      await sleep(500);
    }
    assert.ok(renewals.size >= 4, `renewed on its own timer during the scan (${renewals.size} renewTimes seen)`);
    for (const x of addrs) await waitReleased(x, 10_000, a);
    assert.is((await a.waitReleases((r) => r.pod.startsWith(`${NS_LEAD}/`), 4)).length, 4, "the leader finished its scan");
    assert.equal(b.releases(), [], "the standby released nothing");
  }),
);

const NS_FROZEN = "berth-safe-frozen";
const P_FROZEN = "safe-frozen";

S(
  "leadership: a leader frozen mid-scan (SIGSTOP) while a standby waits: the standby takes over, and the old leader, thawed with work left in its scan, starts no release",
  () =>
    withControllers({ tag: "safefrozen", namespaces: [NS_FROZEN], pools: [P_FROZEN] }, async () => {
      apply(poolManifest(P_FROZEN, { subnet: "10.6.0.0/16", ips: ["10.6.178.111-10.6.178.230"] }));
      const addrs = await gonePodClaims(NS_FROZEN, P_FROZEN, 111, 120);
      const mine = (r: { pod: string }) => r.pod.startsWith(`${NS_FROZEN}/`);
      const old = await startController({ identity: "ctl-frozen", resyncSeconds: 60 });
      await old.waitLeader();
      const next = await startController({ identity: "ctl-next", resyncSeconds: 60 });
      await waitForAsync(`ctl-frozen's first release\n${old.logTail()}`, async () => old.releases(mine).length > 0, 15_000, 10);
      old.freeze();
      const frozenAt = Date.now();
      const releasedByOld = old.releases(mine).length;
      assert.ok(releasedByOld < addrs.length / 2, `frozen early in its scan (${releasedByOld} of ${addrs.length} released)`);
      await next.waitLeader(20_000);
      console.error(`[safefrozen] ctl-next led ${Date.now() - frozenAt} ms after ctl-frozen froze (${releasedByOld} released by then)`);
      old.thaw();
      const tookOver = next.loggedAt("became leader")!;
      assert.ok(tookOver > 0, `ctl-next logged "became leader"\n${next.logTail()}`);
      for (const x of addrs) await waitReleased(x, 30_000, next);
      await sleep(2000);
      // A release whose writes were already on the wire when it froze may complete (and be logged) after the
      // thaw; nothing may start after the takeover. With the lease renewed only between scans and no check per
      // write, the thawed leader goes on through its scan, side by side with the new one.
      const late = old.releases((r) => mine(r) && r.time >= tookOver);
      assert.ok(
        late.length <= 1,
        `no release started by the old leader after ctl-next took over at ${new Date(tookOver).toISOString()}: ${late.length} logged after\n${late.map((r) => r.line).join("\n")}\n${old.logTail()}`,
      );
      await old.waitLog(/no longer the leader|not the leader/, 5000);
      const all = [...old.releases(mine), ...next.releases(mine)];
      assert.is(new Set(all.map((r) => r.address)).size, all.length, "no address released twice");
      assert.ok(all.length >= addrs.length - 1, `all released (${all.length} of ${addrs.length} logged; one cut short by the freeze at most)`);
      assert.is(await old.leader(), 0, "the thawed replica knows it does not lead");
    }),
);

S(
  "leadership: a holder whose clock is an hour behind, renewing every 2 s, keeps its lease (renewTime looks expired); once it stops, a replica takes over after the lease duration",
  () =>
    withControllers({ tag: "safeskew", namespaces: [], pools: [] }, async () => {
      const ghostRenew = async () => {
        const cur = lease() as { metadata?: { resourceVersion?: string } } | undefined;
        const renewTime = new Date(Date.now() - 3_600_000).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
        await admin.replace(path("leases", { ns: "kube-system", name: "berth-controller" }), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "berth-controller", namespace: "kube-system", resourceVersion: cur?.metadata?.resourceVersion },
          spec: { holderIdentity: "ghost", leaseDurationSeconds: 8, acquireTime: renewTime, renewTime, leaseTransitions: 100 },
        });
      };
      await ghostRenew();
      const skew = await startController({ identity: "ctl-skew", resyncSeconds: 60 });
      try {
        for (let i = 0; i < 6; i++) {
          await sleep(2000);
          assert.is(await skew.leader(), 0, `ctl-skew leaves a lease its holder keeps renewing (renewTime an hour old)\n${skew.logTail()}`);
          assert.is(lease()?.spec.holderIdentity, "ghost");
          await ghostRenew();
        }
        const lastRenew = Date.now();
        await skew.waitLeader(15_000);
        const waited = Date.now() - lastRenew;
        console.error(`[safeskew] ctl-skew took the lease ${waited} ms after the ghost's last renewal`);
        assert.ok(waited >= 7500, `only after the lease duration without a change (${waited} ms)`);
      } finally {
        await skew.stop();
        // Nobody may be left holding the lease as "ghost".
        const l = lease() as { metadata?: { resourceVersion?: string }; spec: { holderIdentity?: string } } | undefined;
        if (l?.spec.holderIdentity === "ghost") {
          await admin.replace(path("leases", { ns: "kube-system", name: "berth-controller" }), {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: "berth-controller", namespace: "kube-system", resourceVersion: l.metadata?.resourceVersion },
            spec: { holderIdentity: "", leaseDurationSeconds: 8, renewTime: "1970-01-01T00:00:00.000000Z" },
          });
        }
      }
    }),
);

// ---------------------------------------------------------------- window 7: paged scans, partial failures

const NS_PAGE = "berth-safe-page";
const P_PAGE = "safe-page";

S(
  "full scans LIST in pages (--list-page-size 2) and judge as before: pods removed while no controller ran are found and released, running ones kept, counts right",
  () =>
    withControllers({ tag: "safepage", namespaces: [NS_PAGE], pools: [P_PAGE] }, async (c) => {
      apply(poolManifest(P_PAGE, { subnet: "10.6.0.0/16", ips: ["10.6.178.61-10.6.178.70"] }));
      const node1 = c.node("node1");
      const running = Array.from({ length: 6 }, (_, i) => add(c, node1, NS_PAGE, `run-${i}`, plainPod(NS_PAGE, `run-${i}`, "node1", P_PAGE)));
      const gone = Array.from({ length: 3 }, (_, i) => add(c, node1, NS_PAGE, `gone-${i}`, plainPod(NS_PAGE, `gone-${i}`, "node1", P_PAGE)));
      // Removed while no controller runs: no watch event will tell; only a scan finds them.
      deletePods(
        NS_PAGE,
        gone.map((h) => h.name),
        { force: true },
      );
      await waitFor("the gone pods to be gone", () => gone.every((h) => !podOf(NS_PAGE, h.name)), 10_000);

      const ctl = await startController({ identity: "ctl-page", resyncSeconds: 3, args: ["--list-page-size", "2"] });
      await ctl.waitLeader();
      for (const h of gone) await waitReleased(h.address, 15_000, ctl);
      assert.equal(
        (await ctl.waitReleases((r) => r.pod.startsWith(`${NS_PAGE}/`), 3)).map((r) => `${r.pod} ${r.reason}`).sort(),
        gone.map((h) => `${NS_PAGE}/${h.name} pod-deleted`).sort(),
      );
      await ctl.waitScans(1);
      for (const h of running) assert.ok(claimOf(h.address), `${h.name} keeps its address`);
      await waitForAllocated(P_PAGE, 6, 10_000);
      const claimPages = await ctl.metric('berth_list_requests_total{kind="claims"}');
      const podPages = await ctl.metric('berth_list_requests_total{kind="pods"}');
      const epPages = await ctl.metric('berth_list_requests_total{kind="endpoints"}');
      const scans = await ctl.scans();
      console.error(`[safepage] ${scans} scans: ${claimPages} claim pages, ${podPages} pod pages, ${epPages} endpoint pages`);
      // Per scan at least ceil(objects / 2) requests: the 6 running pods' claims alone need 3.
      assert.ok((claimPages ?? 0) >= 3 * scans, `claims LISTed in pages of 2 (${claimPages} requests in ${scans} scans)`);
      assert.ok((podPages ?? 0) >= 3 * scans, `pods LISTed in pages of 2 (${podPages} requests in ${scans} scans)`);
      assert.ok((epPages ?? 0) >= 3 * scans, `endpoints LISTed in pages of 2 (${epPages} requests in ${scans} scans)`);
    }),
);

const NS_PART = "berth-safe-part";
const P_PART = "safe-part";
const P_PART2 = "safe-part-new";

S(
  "a failing list voids only what needs it: pods cannot be listed, so a pod-deleted release and a half-finished claim (its pod may exist) wait, while a new pool gets its finalizer and counts",
  () =>
    withControllers({ tag: "safepart", namespaces: [NS_PART], pools: [P_PART, P_PART2] }, async (c) => {
      apply(poolManifest(P_PART, { subnet: "10.6.0.0/16", ips: ["10.6.178.71-10.6.178.80"] }));
      const node1 = c.node("node1");
      const run = add(c, node1, NS_PART, "run", plainPod(NS_PART, "run", "node1", P_PART));
      // Pods cannot be listed (the role lacks it, as after an upgrade that skipped fixtures/rbac.yaml). While no
      // controller runs: a pod goes, a new pool appears, and an ADD dies half-way (a claim never bound).
      const goneLate = add(c, node1, NS_PART, "gone-late", plainPod(NS_PART, "gone-late", "node1", P_PART));
      deletePods(NS_PART, ["gone-late"], { force: true });
      await waitFor("gone-late to be gone", () => !podOf(NS_PART, "gone-late"), 10_000);
      apply(poolManifest(P_PART2, { subnet: "10.6.0.0/16", ips: ["10.6.178.81-10.6.178.84"] }));
      await createClaim("10.6.178.81", P_PART2, NS_PART, "half", { addDeadlineSeconds: 1 });
      const allowPods = await denyController("", "pods", ["list"]);
      await sleep(1500);
      const ctl = await startController({ identity: "ctl-nopods", resyncSeconds: 3, addTimeoutSeconds: 1, args: ["--list-page-size", "2"] });
      await ctl.waitLeader();
      await ctl.waitScans(2);
      await ctl.waitLog(/full scan: list failed.*pods/);
      assert.ok(((await ctl.metric('berth_list_failures_total{kind="pods"}')) ?? 0) >= 2, "the failed lists are counted");
      assert.ok(claimOf(goneLate.address), `gone-late's claim waits: its judgement needs the pods list\n${ctl.logTail()}`);
      assert.ok(claimOf(run.address), "run keeps its address");
      assert.ok(claimOf("10.6.178.81"), "a claim never bound waits too: only the pods list can say its pod is gone");
      assert.ok(poolFinalizers(P_PART2)?.includes(POOL_FINALIZER), `the new pool got its finalizer\n${ctl.logTail()}`);
      await waitFor(`${P_PART2}'s counts`, () => poolStatus(P_PART2).totalIPCount === 4 && poolStatus(P_PART2).allocatedIPCount === 1, 10_000);
      await waitForAllocated(P_PART, 2, 10_000);
      // Pods can be listed again: gone-late's claim and the half-finished one go at the next scan.
      await allowPods();
      await waitReleased("10.6.178.81", 10_000, ctl);
      assert.equal(
        (await ctl.waitReleases((r) => r.pod === `${NS_PART}/half`, 1)).map((r) => r.reason),
        ["half-finished-add"],
      );
      await waitReleased(goneLate.address, 10_000, ctl);
      assert.equal(
        (await ctl.waitReleases((r) => r.pod === `${NS_PART}/gone-late`, 1)).map((r) => r.reason),
        ["pod-deleted"],
      );
      assert.ok(claimOf(run.address), "run keeps its address");
    }),
);

S.run();
