/**
 * Issue 19: `berth check` through dist/berth against the test control plane.
 * Each problem kind is injected by hand, the way it happens in a cluster: a
 * claim deleted under a running pod, two pods showing one address (status
 * and Multus' network-status), an in-use address excluded from its pool, an
 * endpoint listing an address another pod holds, an ADD killed mid-way, a
 * pod gone without its DEL, counts written wrong. The check must report
 * exactly those; `--repair --dry-run` must write nothing; `--repair` must
 * fix the safe ones and leave the duplicate; a cleaned-up cluster reports
 * nothing and exits 0. `--node` compares a node's database with the claims.
 *
 * No controller runs here (it would repair what the test injects). A Lease
 * in the controller's name stands in for one while count-drift is judged.
 *
 * Address range: 10.6.194.x (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster check.test.ts
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { CheckReport, Problem } from "../../plugin/check/problem.ts";
import { BERTH, ROOT, sql } from "../support/berth.ts";
import {
  ADMIN_KUBECONFIG,
  admin,
  apply,
  type ClusterScope,
  claimOf,
  claimsOfPool,
  endpointOf,
  getPool,
  markPodReady,
  path,
  podArgs,
  poolManifest,
  type SimNode,
  waitFor,
} from "../support/cluster/cluster-env.ts";
import {
  events,
  type KEvent,
  LEASE_NAME,
  LEASE_NS,
  plainPod,
  sleep,
  startController,
  waitForAsync,
  withControllers,
} from "../support/cluster/controller-env.ts";
import { APISERVER, TESTENV_DIR } from "../support/cluster/test-plane.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { tokenOf } from "../support/kube/kubeconfig-token.ts";
import { runProcess } from "../support/run-process.ts";

const NS = "berth-check";
const POOL = "chk-a";
const S = suite("cluster: berth check finds, and repairs what is safe");

/** The ADD budget: its claims' ADD window is then 9 s. */
const TIMEOUT = { timeoutSeconds: 2 };
const WINDOW_MS = 9000;

interface Added {
  name: string;
  uid: string;
  containerId: string;
  address: string;
}

/** `dist/berth check ARGS -o json` with the admin's kubeconfig: its exit code and report. */
function check(...args: string[]): { status: number | null; report: CheckReport; stderr: string } {
  // --add-timeout-seconds 5 (the controller's default is 30): claims' own 9 s ADD windows then count.
  const r = spawnSync(BERTH, ["check", "--kubeconfig", ADMIN_KUBECONFIG, "-o", "json", "--add-timeout-seconds", "5", ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
  let report: CheckReport;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    throw new Error(`berth check ${args.join(" ")} printed no JSON (exit ${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, report, stderr: r.stderr };
}

/**
 * `dist/berth check --repair -o json` as KUBECONFIG, without blocking this
 * process (a fault proxy may run in it): exit code, problems, and the output
 * for messages.
 */
async function repairAs(kubeconfig: string): Promise<{ status: number; problems: Problem[]; out: string }> {
  const o = await runProcess(BERTH, ["check", "--kubeconfig", kubeconfig, "-o", "json", "--add-timeout-seconds", "5", "--repair"], {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
  });
  const out = `${o.stdout}\n${o.stderr}`;
  let problems: Problem[];
  try {
    problems = (JSON.parse(o.stdout) as CheckReport).problems;
  } catch {
    throw new Error(`berth check --repair printed no JSON (exit ${o.status}): ${out}`);
  }
  return { status: o.status, problems, out };
}

/** Kind and address of each problem, in the report's order. */
const found = (ps: Problem[]) => ps.map((p) => `${p.kind} ${p.address ?? p.pool}`);

/** A pod on node1 and its ADD through dist/berth; the pod then shows its address in status.podIPs. */
function addPod(c: ClusterScope, node: SimNode, name: string, show = true): Added {
  const uid = plainPod(NS, name, node.name, POOL);
  const containerId = randomBytes(32).toString("hex");
  const o = c.berth("ADD", node, { containerId, args: podArgs(NS, name, uid), ipamExtra: TIMEOUT });
  assert.is(o.status, 0, `ADD of ${name}: ${o.stdout} ${o.stderr}\n${c.logTail(node)}`);
  const address = o.json.ips[0].address.split("/")[0];
  if (show) markPodReady(NS, name, address);
  return { name, uid, containerId, address };
}

const items = (p: string) =>
  (admin.sync.get<{ items: any[] }>(p)?.items ?? []).map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name} ${o.metadata.resourceVersion}`);

/** The versions of every object the check could write: claims, endpoints, pools. */
function versions(): string {
  return [...items(path("berthipclaims")), ...items(path("berthendpoints", { ns: NS })), ...items(path("spiderippools"))].sort().join("\n");
}

/** The versions of the claims alone. */
const claimVersions = () => items(path("berthipclaims")).sort().join("\n");

/** A Lease in the controller's name, renewed now: the check then judges counts (a controller keeps them). */
function fakeLeader(c: ClusterScope): void {
  const now = new Date().toISOString().replace("Z", "000Z");
  const body = {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: LEASE_NAME, namespace: LEASE_NS },
    spec: { holderIdentity: "berth-check-test", leaseDurationSeconds: 120, acquireTime: now, renewTime: now },
  };
  const p = path("leases", { ns: LEASE_NS, name: LEASE_NAME });
  const old = admin.sync.get(p);
  if (old) admin.sync.replace(p, { ...body, metadata: { ...body.metadata, resourceVersion: old.metadata.resourceVersion } });
  else admin.sync.create(path("leases", { ns: LEASE_NS }), body);
  c.onCleanup(() => admin.sync.delete(p));
}

S(
  "each problem kind injected is reported exactly; --repair --dry-run writes nothing; --repair fixes the safe ones and leaves the duplicate; cleaned up, nothing is found",
  () =>
    withControllers({ tag: "chk", namespaces: [NS], pools: [POOL] }, async (c) => {
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.194.1-10.6.194.40"], excludeIPs: ["10.6.194.40"] }));
      const node = c.node("node1");

      // A clean cluster: nothing found, exit 0, the pool's figures.
      const ok = addPod(c, node, "p-ok");
      let r = check();
      assert.equal(found(r.report.problems), [], `a clean cluster: ${JSON.stringify(r.report.problems, null, 1)}`);
      assert.is(r.status, 0, "exit 0 when nothing is found");
      assert.equal(
        r.report.pools.find((p) => p.name === POOL),
        { name: POOL, total: 39, claimed: 1, free: 38, retained: 0, excluded: 1 },
      );

      // missing-claim: the claim deleted under a running pod that shows the address.
      const missing = addPod(c, node, "p-missing");
      assert.ok(admin.sync.delete(path("berthipclaims", { name: claimOf(missing.address)!.metadata.name })));
      // duplicate-address: a second live pod shows p-dup1's address in Multus' network-status (its podIPs are the cluster network's).
      const dup = addPod(c, node, "p-dup1");
      plainPod(NS, "p-dup2", node.name, POOL);
      markPodReady(NS, "p-dup2", "10.244.9.9");
      const networkStatus = [
        { name: "cbr0", interface: "eth0", ips: ["10.244.9.9"], default: true },
        { name: `${NS}/macvlan`, interface: "net1", ips: [dup.address] },
      ];
      admin.sync.patch(path("pods", { ns: NS, name: "p-dup2" }), {
        metadata: { annotations: { "k8s.v1.cni.cncf.io/network-status": JSON.stringify(networkStatus) } },
      });
      // outside-pool: an address in use added to excludeIPs.
      const outside = addPod(c, node, "p-outside");
      admin.sync.patch(path("spiderippools", { name: POOL }), { spec: { excludeIPs: ["10.6.194.40", outside.address] } });
      // phantom-binding: p-ph2's endpoint lists p-ph1's address on another interface.
      const ph1 = addPod(c, node, "p-ph1");
      const ph2 = addPod(c, node, "p-ph2");
      const ep2 = endpointOf(NS, ph2.name)!;
      admin.sync.replace(path("berthendpoints", { ns: NS, name: ph2.name }), {
        ...ep2,
        spec: { ...ep2.spec, ips: [...ep2.spec.ips, { ...ep2.spec.ips[0], interface: "net9", ipv4: `${ph1.address}/16` }] },
      });
      // orphan-claim (pod-deleted): a pod gone without its DEL.
      const gone = addPod(c, node, "p-gone");
      admin.sync.delete(path("pods", { ns: NS, name: gone.name }), { gracePeriodSeconds: 0 });
      await waitFor("p-gone's pod object to be gone", () => !admin.sync.get(path("pods", { ns: NS, name: gone.name })));
      // orphan-claim (half-finished-add): an ADD killed between its claim and its endpoint, its pod then gone, its window over.
      const killedUid = plainPod(NS, "p-killed", node.name, POOL);
      const killedCid = randomBytes(32).toString("hex");
      c.killedAdd(node, { ns: NS, name: "p-killed", uid: killedUid }, killedCid, "kill-after-claim", TIMEOUT);
      const killed = Object.values(admin.sync.get<{ items: any[] }>(path("berthipclaims"))!.items).find((cl) => cl.spec.podName === "p-killed");
      assert.ok(killed, "the killed ADD left its claim");
      admin.sync.delete(path("pods", { ns: NS, name: "p-killed" }), { gracePeriodSeconds: 0 });
      // count-drift: counts written wrong while a controller (its Lease) leads.
      fakeLeader(c);
      admin.sync.patch(path("spiderippools", { name: POOL, sub: "status" }), { status: { allocatedIPCount: 99, totalIPCount: 38 } });
      await sleep(WINDOW_MS + 1000);

      r = check();
      assert.is(r.status, 1, `exit 1 while problems remain: ${r.stderr}`);
      const want = [
        `duplicate-address ${dup.address}`,
        ...[gone.address, killed.spec.address].sort((a, b) => Number(a.split(".")[3]) - Number(b.split(".")[3])).map((a) => `orphan-claim ${a}`),
        `missing-claim ${missing.address}`,
        `phantom-binding ${ph1.address}`,
        `outside-pool ${outside.address}`,
        `count-drift ${POOL}`,
      ];
      assert.equal(found(r.report.problems), want, `the injected problems, sorted by kind then address:\n${JSON.stringify(r.report.problems, null, 1)}`);
      const byKind = (kind: string, address?: string) => r.report.problems.find((p) => p.kind === kind && (!address || p.address === address))!;
      assert.equal(byKind("duplicate-address").pods, [`${NS}/p-dup1`, `${NS}/p-dup2`]);
      assert.match(byKind("duplicate-address").action, `${NS}/p-dup2`, "the action names the pod to restart");
      assert.equal(byKind("missing-claim").pods, [`${NS}/p-missing`]);
      assert.equal(byKind("phantom-binding").pods, [`${NS}/p-ph2`, `${NS}/p-ph1`]);
      assert.equal(byKind("outside-pool").pods, [`${NS}/p-outside`]);
      assert.is(byKind("orphan-claim", gone.address).rule, "pod-deleted");
      assert.is(byKind("orphan-claim", killed.spec.address).rule, "half-finished-add");
      assert.ok((byKind("orphan-claim", killed.spec.address).age ?? 0) >= 9, "the orphan's age covers its ADD's window");
      for (const p of r.report.problems) {
        assert.ok(p.action && p.detail, `${p.kind} ${p.address}: detail and action`);
        assert.ok(p.pool === POOL, `${p.kind} ${p.address}: pool ${p.pool}`);
        for (const o of p.objects ?? []) assert.ok(o.resourceVersion, `${p.kind}: ${o.kind} ${o.name} names the version it was judged on`);
        assert.not.ok(JSON.stringify(p).includes("null"), `fields that do not apply are absent, not null: ${JSON.stringify(p)}`);
      }
      const pool = r.report.pools.find((p) => p.name === POOL)!;
      assert.equal(pool, { name: POOL, total: 38, claimed: 7, free: 31, retained: 0, excluded: 2 }, "figures: one more excluded; the claims as they are");

      // --repair --dry-run: what would be done, nothing written.
      const before = versions();
      const eventsBefore = events(NS).length;
      r = check("--repair", "--dry-run");
      assert.is(r.status, 1);
      assert.equal(found(r.report.problems), want);
      for (const p of r.report.problems) {
        assert.is(p.repaired, false, `${p.kind}: dry run repairs nothing`);
        assert.ok(p.repair, `${p.kind}: says what it would do`);
      }
      assert.match(byKindIn(r.report, "phantom-binding").repair!, /^would strip/);
      assert.is(versions(), before, "--dry-run wrote nothing");
      assert.is(events(NS).length, eventsBefore, "--dry-run posted no Event");

      // --repair: the safe ones fixed, the duplicate, the excluded address and the half-finished ADD left.
      const allEvents = () => [...events(NS), ...events("default")] as (KEvent & { metadata: { name: string } })[];
      const seen = new Set(allEvents().map((e) => e.metadata.name));
      r = check("--repair");
      assert.is(r.status, 1, "the duplicate remains: exit 1");
      const repaired = r.report.problems.filter((p) => p.repaired).map((p) => `${p.kind} ${p.address ?? p.pool}`);
      assert.equal(
        repaired.sort(),
        [`count-drift ${POOL}`, `missing-claim ${missing.address}`, `orphan-claim ${gone.address}`, `phantom-binding ${ph1.address}`].sort(),
      );
      assert.is(claimOf(missing.address)?.spec.podName, "p-missing", "the missing claim is written for the pod that shows it");
      assert.is(claimOf(missing.address)?.spec.podUID, missing.uid);
      assert.is(claimOf(gone.address), undefined, "the orphan of a deleted pod is released");
      assert.ok(claimOf(killed.spec.address), "the half-finished ADD's claim is left to the controller");
      assert.is(claimOf(dup.address)?.spec.podName, "p-dup1", "the duplicate's claim is untouched");
      assert.is(claimOf(outside.address)?.spec.podName, "p-outside", "an address a live pod shows is never released");
      assert.not.ok(
        endpointOf(NS, ph2.name)!.spec.ips.some((i) => i.ipv4?.startsWith(`${ph1.address}/`)),
        "the phantom is stripped from p-ph2's endpoint",
      );
      assert.ok(
        endpointOf(NS, ph1.name)!.spec.ips.some((i) => i.ipv4?.startsWith(`${ph1.address}/`)),
        "p-ph1's own entry stays",
      );
      assert.is(
        getPool(POOL)?.status?.allocatedIPCount,
        7,
        `counts rewritten from the claims: ${JSON.stringify(r.report.problems.find((p) => p.kind === "count-drift"))}; claims ${claimsOfPool(POOL).map((cl) => cl.spec.address)}`,
      );
      // Each repair: one Event, on the object it changed; one JSON log line.
      const asClaim = (address: string) => `BerthIPClaim/v4-${address.replace(/\./g, "-")}`;
      assert.equal(
        allEvents()
          .filter((e) => !seen.has(e.metadata.name))
          .map((e) => `${e.reason} ${e.involvedObject.kind}/${e.involvedObject.name}`)
          .sort(),
        [
          `AddressClaimed ${asClaim(missing.address)}`,
          `AddressReleased ${asClaim(gone.address)}`,
          `CountsRewritten SpiderIPPool/${POOL}`,
          `PhantomStripped BerthEndpoint/${ph2.name}`,
        ],
      );
      const logged = r.stderr
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { level: string; msg: string; kind?: string });
      assert.equal(
        logged
          .filter((l) => l.level === "info")
          .map((l) => `${l.msg} ${l.kind}`)
          .sort(),
        ["check repaired count-drift", "check repaired missing-claim", "check repaired orphan-claim", "check repaired phantom-binding"],
        r.stderr,
      );

      r = check();
      assert.equal(found(r.report.problems), [`duplicate-address ${dup.address}`, `orphan-claim ${killed.spec.address}`, `outside-pool ${outside.address}`]);

      // The operator does what the actions say: the second pod goes, the pool's edit is undone, the killed ADD's DEL runs.
      admin.sync.delete(path("pods", { ns: NS, name: "p-dup2" }), { gracePeriodSeconds: 0 });
      admin.sync.patch(path("spiderippools", { name: POOL }), { spec: { excludeIPs: ["10.6.194.40"] } });
      const del = c.berth("DEL", node, { containerId: killedCid, args: podArgs(NS, "p-killed", killedUid), ipamExtra: TIMEOUT });
      assert.is(del.status, 0, `DEL of the killed ADD: ${del.stderr}`);
      admin.sync.delete(path("leases", { ns: LEASE_NS, name: LEASE_NAME }));
      await waitFor("p-dup2 to be gone", () => !admin.sync.get(path("pods", { ns: NS, name: "p-dup2" })));
      r = check();
      assert.equal(found(r.report.problems), [], `cleaned up: ${JSON.stringify(r.report.problems, null, 1)}`);
      assert.is(r.status, 0);
      assert.ok(ok.address);
    }),
);

function byKindIn(report: CheckReport, kind: string): Problem {
  return report.problems.find((p) => p.kind === kind)!;
}

S("--node: this node's database against the claims for this node; a stale pending lease; and nothing once consistent", () =>
  withControllers({ tag: "chkn", namespaces: [NS], pools: [POOL] }, async (c) => {
    apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.194.101-10.6.194.140"] }));
    const node = c.node("node2");
    const nodeCheck = (...extra: string[]) => check("--node", "--node-name", node.name, "--data-dir", node.dataDir, ...extra);
    const a = addPod(c, node, "n-a");
    const b = addPod(c, node, "n-b");
    let r = nodeCheck();
    assert.equal(found(r.report.problems), [], `consistent: ${JSON.stringify(r.report.problems, null, 1)}`);
    assert.is(r.status, 0);

    // An active lease whose claim is gone; a claim for this node whose lease is gone; a pending lease of a killed ADD.
    admin.sync.delete(path("berthipclaims", { name: claimOf(a.address)!.metadata.name }));
    const db = join(node.dataDir, "berth.db");
    const handle = new Database(db);
    handle.prepare("DELETE FROM leases WHERE address = ?").run(b.address);
    handle.close();
    const uid = plainPod(NS, "n-pending", node.name, POOL);
    c.killedAdd(node, { ns: NS, name: "n-pending", uid }, randomBytes(32).toString("hex"), "kill-after-pending", TIMEOUT);
    const pending = sql<{ address: string }>(db, "SELECT address FROM leases WHERE state = 'pending'");
    assert.is(pending.length, 1, "the killed ADD left one pending lease");
    // Time passing, without waiting for it: the pending lease is an hour old (a killed ADD's window is minutes at most).
    const aged = new Database(db);
    aged.prepare("UPDATE leases SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') WHERE state = 'pending'").run();
    aged.close();
    await sleep(WINDOW_MS + 1000);

    r = nodeCheck();
    assert.is(r.status, 1, r.stderr);
    const last = (x: string) => Number(x.split(".")[3]);
    const mismatched = [a.address, b.address].sort((x, y) => last(x) - last(y));
    const want = [...mismatched.map((x) => `node-lease-mismatch ${x}`), `stale-pending-lease ${pending[0].address}`];
    assert.equal(found(r.report.problems), want, JSON.stringify(r.report.problems, null, 1));
    // The table form is the default.
    const table = spawnSync(BERTH, ["check", "--node", "--kubeconfig", ADMIN_KUBECONFIG, "--node-name", node.name, "--data-dir", node.dataDir], {
      encoding: "utf8",
    });
    assert.is(table.status, 1);
    for (const w of want) assert.match(table.stdout, w.split(" ")[0]);
  }),
);

S("--repair never releases an address a live pod shows: an orphan claim whose address another pod uses stays", () =>
  withControllers({ tag: "chks", namespaces: [NS], pools: [POOL] }, async (c) => {
    apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.194.151-10.6.194.160"] }));
    const node = c.node("node1");
    const gone = addPod(c, node, "s-gone");
    admin.sync.delete(path("pods", { ns: NS, name: gone.name }), { gracePeriodSeconds: 0 });
    await waitFor("s-gone's pod object to be gone", () => !admin.sync.get(path("pods", { ns: NS, name: gone.name })));
    // Another pod uses the address (set up by hand, as a second IPAM or a static configuration would).
    plainPod(NS, "s-user", node.name, POOL);
    markPodReady(NS, "s-user", gone.address);
    let r = check();
    assert.equal(found(r.report.problems), [`orphan-claim ${gone.address}`, `missing-claim ${gone.address}`]);
    r = check("--repair");
    assert.is(r.status, 1);
    const orphan = r.report.problems.find((p) => p.kind === "orphan-claim")!;
    assert.is(orphan.repaired, false);
    assert.match(orphan.repair!, `${NS}/s-user shows it`);
    assert.is(claimOf(gone.address)?.spec.podName, "s-gone", "the claim stays: the address is in use");
  }),
);

S("fixtures/rbac-check.yaml: berth-check reads and finds, and cannot repair (exit 2, naming the refusal); berth-check-repair repairs", () =>
  withControllers({ tag: "chkr", namespaces: [NS], pools: [POOL] }, async (c) => {
    apply(readFileSync(join(ROOT, "fixtures/rbac-check.yaml"), "utf8"));
    apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.194.201-10.6.194.220"] }));
    const node = c.node("node3");
    const a = addPod(c, node, "r-a");
    const b = addPod(c, node, "r-b");
    const reader = await c.accountKubeconfig("berth-check-test-reader", "berth-check");
    const repairer = await c.accountKubeconfig("berth-check-test-repairer", "berth-check-repair");
    const as = (kubeconfig: string, ...args: string[]) => {
      const r = spawnSync(BERTH, ["check", "--kubeconfig", kubeconfig, "-o", "json", ...args], { encoding: "utf8", timeout: 120_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    let r = as(reader);
    assert.is(r.status, 0, `the read-only role is enough to check: ${r.stderr}`);
    // A phantom: r-b's endpoint lists r-a's address.
    const ep = endpointOf(NS, b.name)!;
    admin.sync.replace(path("berthendpoints", { ns: NS, name: b.name }), {
      ...ep,
      spec: { ...ep.spec, ips: [...ep.spec.ips, { ...ep.spec.ips[0], interface: "net9", ipv4: `${a.address}/16` }] },
    });
    r = as(reader);
    assert.is(r.status, 1, r.stderr);
    assert.equal(found(JSON.parse(r.stdout).problems), [`phantom-binding ${a.address}`]);
    r = as(reader, "--repair");
    assert.is(r.status, 2, `the read-only role cannot repair: exit 2\n${r.stdout}`);
    assert.match(r.stderr, /403|forbidden/i, "stderr names the refusal");
    r = as(repairer, "--repair");
    assert.is(r.status, 0, `the repair role repairs it: ${r.stdout}\n${r.stderr}`);
    assert.is(as(reader).status, 0, "nothing left");
  }),
);

S(
  "--repair through lost answers: each write whose answer is lost is reported not known and the rest go on (exit 1); a re-run finds them done and repeats nothing, after other pods took the released addresses",
  () =>
    withControllers({ tag: "chkf", namespaces: [NS], pools: [POOL] }, async (c) => {
      apply(readFileSync(join(ROOT, "fixtures/rbac-check.yaml"), "utf8"));
      // Three addresses, all taken: a released one can only go to the pods that come after.
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.194.171-10.6.194.173"] }));
      const node = c.node("node2");
      const lost = addPod(c, node, "f-lost");
      const kept = addPod(c, node, "f-kept");
      const missing = addPod(c, node, "f-missing");
      // Two pods gone without their DEL (orphan claims), a claim deleted under a running pod (missing claim).
      for (const p of [lost, kept]) admin.sync.delete(path("pods", { ns: NS, name: p.name }), { gracePeriodSeconds: 0 });
      await waitFor("f-lost and f-kept's pod objects to be gone", () => [lost, kept].every((p) => !admin.sync.get(path("pods", { ns: NS, name: p.name }))));
      const missingClaim = claimOf(missing.address)!.metadata.name;
      assert.ok(admin.sync.delete(path("berthipclaims", { name: missingClaim })));
      // Past the claims' ADD window (a claim that young may be an ADD still running), the orphans count.
      await sleep(WINDOW_MS + 1000);
      const last = (x: string) => Number(x.split(".")[3]);
      const orphans = [lost, kept].map((p) => p.address).sort((x, y) => last(x) - last(y));
      assert.equal(found(check().report.problems), [...orphans.map((a) => `orphan-claim ${a}`), `missing-claim ${missing.address}`]);

      const repairer = await c.accountKubeconfig("berth-check-test-faults", "berth-check-repair");
      const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki") });
      try {
        const lostClaim = claimOf(lost.address)!.metadata.name;
        // The server does the write; its answer never reaches berth check.
        proxy.rule({ method: "DELETE", path: new RegExp(`/berthipclaims/${lostClaim}(\\?|$)`), action: "drop-response", times: 1 });
        proxy.rule({ method: "POST", path: /\/berthipclaims(\?|$)/, action: "drop-response", times: 1 });
        const kubeconfig = c.proxiedKubeconfig(proxy, tokenOf(repairer));
        const r = await repairAs(kubeconfig);
        assert.equal(
          proxy.faults().map((f) => `${f.method} ${f.status}`),
          ["DELETE 200", "POST 201"],
          `both writes were done by the server, their answers lost\n${proxy.log.map((l) => `${l.method} ${l.path} ${l.status} ${l.fault ?? ""}`).join("\n")}`,
        );
        assert.is(r.status, 1, `a repair whose answer was lost is not known to be done: exit 1\n${r.out}`);
        const by = (kind: string, address: string) => r.problems.find((p) => p.kind === kind && p.address === address)!;
        const requests = proxy.log.map((l) => `${l.method} ${l.path} ${l.status} ${l.fault ?? ""}`).join("\n");
        // The create's answer lost: not sent again (not idempotent), so not known.
        const created = by("missing-claim", missing.address);
        assert.is(created.repaired, false, requests);
        assert.match(created.repair!, "not known whether repaired");
        assert.match(created.repair!, "run berth check again");
        // The delete's answer lost: the HTTP client sends a DELETE again (idempotent; conditional on the
        // claim's UID), which finds it gone. Gone is what was wanted: repaired.
        assert.match(requests, new RegExp(`DELETE \\S+/${lostClaim} 404`), "the DELETE was sent again and found nothing");
        const released = by("orphan-claim", lost.address);
        assert.is(released.repaired, true, `${released.repair}\n${requests}`);
        assert.match(released.repair!, "its claim is gone");
        assert.is(by("orphan-claim", kept.address).repaired, true, `the rest went on: ${JSON.stringify(r.problems, null, 1)}`);
      } finally {
        await proxy.close();
      }
      // What the server did: both lost writes took effect, once.
      assert.is(claimOf(lost.address), undefined, "the lost DELETE was done");
      assert.is(claimOf(kept.address), undefined);
      assert.is(claimOf(missing.address)?.spec.podUID, missing.uid, "the lost POST was done: the claim names the pod that shows the address");

      // The re-run: the lost DELETE left its endpoint entry (the release stops at the claim), a phantom
      // binding now, which it strips; the claims it judged again are as they were.
      const claimsBefore = claimVersions();
      let again = await repairAs(repairer);
      assert.is(again.status, 0, `the re-run repairs what is left: ${again.out}`);
      assert.equal(
        again.problems.map((p) => `${p.kind} ${p.address} ${p.repaired}`),
        [`phantom-binding ${lost.address} true`],
        again.out,
      );
      assert.is(claimVersions(), claimsBefore, "no claim released or created again");

      // New pods take the released addresses; a run now finds nothing and writes nothing.
      const after = [addPod(c, node, "f-next-a"), addPod(c, node, "f-next-b")];
      assert.equal(after.map((p) => p.address).sort(), [lost.address, kept.address].sort(), "the new pods got the released addresses");
      const before = versions();
      again = await repairAs(repairer);
      assert.is(again.status, 0, again.out);
      assert.equal(again.problems, []);
      assert.is(versions(), before, "nothing written");
      for (const p of after) assert.is(claimOf(p.address)?.spec.podUID, p.uid, `${p.name} keeps its address`);
      assert.is(claimOf(missing.address)?.spec.podUID, missing.uid);
    }),
);

S("the controller runs the same checks every --check-interval-seconds: berth_check_problems{kind} and berth_pool_addresses{pool,state}", () =>
  withControllers({ tag: "chkm", namespaces: [NS], pools: [POOL] }, async (c) => {
    apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.194.221-10.6.194.240"], excludeIPs: ["10.6.194.240"] }));
    const node = c.node("node1");
    const a = addPod(c, node, "m-a");
    // A duplicate, which no controller repairs: a second pod shows m-a's address.
    plainPod(NS, "m-b", node.name, POOL);
    markPodReady(NS, "m-b", a.address);
    const ctl = await startController({ identity: "ctl-chkm", logDir: c.tempDir("ctl"), args: ["--check-interval-seconds", "1"] });
    const key = (k: string) => ctl.metric(k);
    await waitForAsync("berth_check_problems to count the duplicate", async () => (await key('berth_check_problems{kind="duplicate-address"}')) === 1, 30_000);
    assert.is(await key('berth_check_problems{kind="orphan-claim"}'), 0, "every kind is exported, zeros included");
    const figures = Object.fromEntries(
      await Promise.all(
        ["total", "claimed", "free", "retained", "excluded"].map(async (st) => [st, await key(`berth_pool_addresses{pool="${POOL}",state="${st}"}`)]),
      ),
    );
    assert.equal(figures, { total: 19, claimed: 1, free: 18, retained: 0, excluded: 1 });
    assert.ok(((await key("berth_check_duration_seconds")) ?? -1) >= 0, "the check's duration is exported");
    admin.sync.delete(path("pods", { ns: NS, name: "m-b" }), { gracePeriodSeconds: 0 });
    await waitForAsync("the duplicate to be gone from the metric", async () => (await key('berth_check_problems{kind="duplicate-address"}')) === 0, 30_000);
  }),
);

S.run();
