/**
 * The seed scenario (../shared/seed/statefulset.zh_CN.md) end to end, in
 * cluster mode, on the test control plane with the real StatefulSet
 * controller: `test-ippool` and `test-sts` exactly as the seed applies them,
 * two simulated nodes, Debian's bridge plugin with berth as ipam in network
 * namespaces, and the kubelet/scheduler played by hand in their real order.
 *
 * `berth controller` runs as it does in a cluster: the pool's `kubectl get
 * sp` columns (counts, VERSION) are its to keep, not the plugin's.
 *
 * The StatefulSet lives in namespace berth-seed (not default) so that this
 * file never touches anyone else's objects; test-ippool is cluster-scoped and
 * keeps the seed's name.
 *
 * The README's walkthrough is this scenario: its manifests are applied, and
 * its kubectl commands run, from the README itself (test/support/cluster/doc-walk.ts),
 * each when the scenario reaches it, printing what the README shows (ages
 * aside, and its addresses standing for the ones berth picked). So are the
 * kubectl commands of docs/deploy.md (the CRDs and roles), docs/pools.md
 * (a pool's claims) and docs/troubleshooting.md (the objects to look at).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster seed.test.ts
 */
import { spawnSync } from "node:child_process";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { CheckReport } from "../../plugin/check/problem.ts";
import { BERTH } from "../support/berth.ts";
import {
  ADMIN_KUBECONFIG,
  type ClusterScope,
  claimNameOf,
  claimOf,
  claimsOfPool,
  deletePods as deletePodsNow,
  endpointOf,
  podOf,
  type Running,
  spTable,
  startPod,
  stopPod,
  waitFor,
  waitForAllocated,
  waitForTerminating,
} from "../support/cluster/cluster-env.ts";
import { startController, withControllers } from "../support/cluster/controller-env.ts";
import { type DocShell, DocWalk, docShell } from "../support/cluster/doc-walk.ts";
import { docBlock, docCommands, docTranscript } from "../support/docs/doc-blocks.ts";

const NS = "berth-seed";
const POOL = "test-ippool";
const STS = "test-sts";

const S = suite("cluster: seed scenario");

function inSeedRange(address: string | undefined): boolean {
  const m = /^10\.6\.168\.(\d+)$/.exec(address ?? "");
  return !!m && Number(m[1]) >= 101 && Number(m[1]) <= 110;
}

/**
 * `kubectl get sp test-ippool`, header and row, whitespace-normalised, once
 * the controller has caught up (it writes the counts within about half a
 * second of a change; 10 s allows for a loaded machine).
 */
async function assertSp(allocated: number): Promise<void> {
  const want = ["NAME VERSION SUBNET ALLOCATED-IP-COUNT TOTAL-IP-COUNT DEFAULT", `test-ippool 4 10.6.0.0/16 ${allocated} 10 false`];
  let seen: string[] = [];
  await waitFor(
    `kubectl get sp ${POOL} to show ${allocated} allocated`,
    () => JSON.stringify((seen = spTable(POOL))) === JSON.stringify(want),
    10_000,
    100,
  ).catch(() => assert.equal(seen, want, `kubectl get sp ${POOL}`));
}

/** Every view of one running member agrees: netns (checked by attach), claim, endpoint, pod. */
function assertBound(p: Running): void {
  assert.ok(inSeedRange(p.v4), `${p.name}: ${p.v4} is in 10.6.168.101-10.6.168.110`);
  assert.equal(
    p.attachment.result.ips.map((ip: { address: string }) => ip.address),
    [`${p.v4}/16`],
    `${p.name}: one address, prefix of the pool's subnet`,
  );
  const claim = claimOf(p.v4!);
  assert.ok(claim, `${p.name}: BerthIPClaim ${claimNameOf(p.v4!)} exists`);
  assert.is(claim!.metadata.name, claimNameOf(p.v4!));
  assert.equal(
    {
      address: claim!.spec.address,
      pool: claim!.spec.pool,
      ns: claim!.spec.podNamespace,
      pod: claim!.spec.podName,
      uid: claim!.spec.podUID,
      container: claim!.spec.containerID,
      node: claim!.spec.node,
      sts: claim!.spec.statefulSet,
      iface: claim!.spec.interface,
    },
    { address: p.v4, pool: POOL, ns: NS, pod: p.name, uid: p.uid, container: p.attachment.containerId, node: p.node.name, sts: STS, iface: "eth0" },
    `${p.name}: claim held by this incarnation and sandbox`,
  );
  const ep = endpointOf(NS, p.name);
  assert.ok(ep, `${p.name}: BerthEndpoint exists`);
  assert.equal(
    {
      podUID: ep!.spec.podUID,
      node: ep!.spec.node,
      containerID: ep!.spec.containerID,
      type: ep!.spec.ownerControllerType,
      owner: ep!.spec.ownerControllerName,
      ips: ep!.spec.ips,
    },
    {
      podUID: p.uid,
      node: p.node.name,
      containerID: p.attachment.containerId,
      type: "StatefulSet",
      owner: STS,
      // The entry names the network that wrote it and the pod incarnation it was taken for.
      ips: [{ interface: "eth0", network: "berth-cluster-seed", podUID: p.uid, ipv4: `${p.v4}/16`, ipv4Pool: POOL }],
    },
    `${p.name}: endpoint`,
  );
}

/** The pods' addresses by name. */
const addresses = (pods: Running[]) => Object.fromEntries(pods.map((p) => [p.name, p.v4]));

/**
 * kubectl delete pod A B ... (deletionTimestamp; `started`: the README's own
 * kubectl did it), then for each the kubelet's DEL and final delete.
 */
function deletePods(c: ClusterScope, pods: Running[], started = false): void {
  if (!started)
    deletePodsNow(
      NS,
      pods.map((p) => p.name),
    );
  for (const p of pods) {
    stopPod(c, NS, p, () => {
      // Terminating and DEL done: a member within the replica range keeps its claim and endpoint.
      assert.ok(podOf(NS, p.name)?.metadata.deletionTimestamp, `${p.name} is terminating during DEL`);
      assert.is(claimOf(p.v4!)?.spec.podName, p.name, `${p.name}: claim kept after DEL of a member in range`);
      assert.ok(endpointOf(NS, p.name), `${p.name}: endpoint kept after DEL`);
    });
  }
}

/**
 * What docs/troubleshooting.md and docs/pools.md tell an operator to look at, with two members running: each
 * command succeeds and shows them.
 */
function lookAround(sh: DocShell, pods: Running[]): void {
  const out = (cmd: string) => {
    const r = sh.run(cmd);
    assert.is(r.status, 0, `${cmd}: ${r.stderr}`);
    return r.stdout;
  };
  const [sp, bic, bep, events, ...rest] = docCommands("cluster-state");
  assert.equal(rest, [], "docs/troubleshooting.md: four commands");
  assert.match(out(sp), /^test-ippool\s+4\s+10\.6\.0\.0\/16\s+2\s+10\s+false$/m, sp);
  const claims = out(bic);
  for (const p of pods)
    assert.match(
      claims,
      new RegExp(`^${claimNameOf(p.v4!)}\\s+${p.v4!.replace(/\./g, "\\.")}\\s+${POOL}\\s+${NS}\\s+${p.name}\\s+${p.node.name}\\s`, "m"),
      bic,
    );
  const endpoints = out(bep);
  for (const p of pods) assert.match(endpoints, new RegExp(`^${NS}\\s+${p.name}\\s+eth0\\s+${POOL}\\s`, "m"), bep);
  out(events);
  const [poolClaims, ...more] = docCommands("pool-claims");
  assert.equal(more, [], "docs/pools.md: one command");
  const rows = out(poolClaims).trim().split("\n").slice(1);
  assert.equal(rows.map((l) => l.split(/\s+/)[0]).sort(), pods.map((p) => claimNameOf(p.v4!)).sort(), `${poolClaims}: the pool's claims`);
}

S("seed: addresses kept across deletion and rescheduling, a new one on scale-up, released on scale-down; kubectl as the README shows", () =>
  withControllers({ tag: "seed", namespaces: [NS], pools: [POOL], chain: true }, async (c) => {
    await startController({ identity: "seed-ctl" });
    const node1 = c.node("node1");
    const node2 = c.node("node2");
    const sh = docShell(c, NS);

    // docs/deploy.md: the CRDs and roles, already applied by the control plane: applying them again is harmless.
    for (const cmd of docCommands("crds-apply")) {
      const r = sh.run(cmd, { inRepo: true });
      assert.is(r.status, 0, `${cmd}: ${r.stderr}`);
    }
    // The README's walkthrough: its two manifests as the files it names, then its commands in step with the scenario.
    sh.write("test-ippool.yaml", docBlock("seed-pool").text);
    sh.write("test-sts.yaml", docBlock("seed-statefulset").text);
    const readme = new DocWalk("README's walkthrough", docTranscript("seed-walkthrough"), sh, { vary: ["AGE"], bind: ["IP"] });
    await readme.run("kubectl apply -f test-ippool.yaml -f test-sts.yaml");

    // Two replicas, stepped up in order (OrderedReady), on alternating nodes as in the seed transcript.
    const sts0 = await startPod(c, NS, "test-sts-0", node2);
    const sts1 = await startPod(c, NS, "test-sts-1", node1);
    for (const p of [sts0, sts1]) assertBound(p);
    assert.is.not(sts0.v4, sts1.v4, "distinct addresses");
    await assertSp(2);
    assert.is(claimsOfPool(POOL).length, 2, "two claims");
    const two = addresses([sts0, sts1]);
    await readme.run("kubectl get spiderippool", 10_000);
    await readme.run("kubectl get po -l app=test-sts -o wide");
    lookAround(sh, [sts0, sts1]);

    // Delete both pods; the controller recreates them with new UIDs; ADD on the other node, new netns and container IDs.
    const deleting = readme.start("kubectl delete pod test-sts-0 test-sts-1");
    for (const p of [sts0, sts1]) await waitForTerminating(NS, p.name);
    deletePods(c, [sts0, sts1], true);
    await deleting.done();
    await assertSp(2);
    const again0 = await startPod(c, NS, "test-sts-0", node1, sts0.uid);
    const again1 = await startPod(c, NS, "test-sts-1", node2, sts1.uid);
    for (const p of [again0, again1]) assertBound(p);
    assert.equal(addresses([again0, again1]), two, "recreated pods got their addresses back");
    for (const [before, after] of [
      [sts0, again0],
      [sts1, again1],
    ]) {
      assert.is.not(after.uid, before.uid, `${after.name}: new UID`);
      assert.is.not(after.attachment.containerId, before.attachment.containerId);
      assert.is.not(after.attachment.netns, before.attachment.netns);
    }
    await assertSp(2);
    await readme.run("kubectl get po -l app=test-sts -o wide");

    // Scale to 3: test-sts-2 gets a third, different address.
    await readme.run("kubectl scale sts test-sts --replicas 3");
    const sts2 = await startPod(c, NS, "test-sts-2", node2);
    assertBound(sts2);
    const three = addresses([again0, again1, sts2]);
    assert.is(new Set(Object.values(three)).size, 3, `three distinct addresses: ${JSON.stringify(three)}`);
    await assertSp(3);
    await readme.run("kubectl get po -l app=test-sts -o wide");
    await readme.run("kubectl get spiderippool", 10_000);

    // Delete all three: the same three come back.
    deletePods(c, [again0, again1, sts2]);
    await assertSp(3);
    const third0 = await startPod(c, NS, "test-sts-0", node2, again0.uid);
    const third1 = await startPod(c, NS, "test-sts-1", node1, again1.uid);
    const third2 = await startPod(c, NS, "test-sts-2", node1, sts2.uid);
    for (const p of [third0, third1, third2]) assertBound(p);
    assert.equal(addresses([third0, third1, third2]), three, "all three recreated pods got their addresses back");
    await assertSp(3);

    // Scale to 2: the controller sets deletionTimestamp on test-sts-2; the kubelet's DEL releases its address.
    await readme.run("kubectl scale sts test-sts --replicas 2");
    await waitForTerminating(NS, "test-sts-2");
    c.detach(third2.attachment);
    assert.is(claimOf(third2.v4!), undefined, `test-sts-2's claim ${claimNameOf(third2.v4!)} is gone after DEL`);
    assert.is(endpointOf(NS, "test-sts-2"), undefined, "test-sts-2's endpoint is gone after DEL");
    await waitForAllocated(POOL, 2, 10_000);
    await assertSp(2);
    await readme.run("kubectl get spiderippool", 10_000);
    deletePodsNow(NS, ["test-sts-2"], { force: true });
    // The remaining members are untouched.
    assertBound(third0);
    assertBound(third1);
    assert.equal(
      claimsOfPool(POOL)
        .map((cl) => cl.spec.address)
        .sort(),
      [third0.v4, third1.v4].sort(),
      "only test-sts-0/1 hold claims",
    );
    // The controller does not bring test-sts-2 back.
    await new Promise((r) => setTimeout(r, 500));
    await waitFor("test-sts-2 to stay gone", () => !podOf(NS, "test-sts-2"), 5000);

    // The StatefulSet is deleted: the garbage collector deletes its pods (terminating, bound), the kubelets' DELs
    // find no StatefulSet to keep the addresses for and release them; the pool is empty again.
    // berth check, at the scenario's end, finds nothing of it: no duplicate, leak or drift among its pods and pool.
    const checked = spawnSync(BERTH, ["check", "--kubeconfig", ADMIN_KUBECONFIG, "-o", "json"], { encoding: "utf8", timeout: 120_000 });
    assert.ok(checked.status === 0 || checked.status === 1, `berth check ran: ${checked.stderr}`);
    const report = JSON.parse(checked.stdout) as CheckReport;
    const ours = report.problems.filter((p) => p.pool === POOL || p.pods?.some((x) => x.startsWith(`${NS}/`)));
    assert.equal(ours, [], "berth check finds nothing in the seed's pool and namespace");
    const figures = report.pools.find((p) => p.name === POOL);
    assert.equal([figures?.claimed, figures?.free, figures?.retained], [2, (figures?.total ?? 0) - 2, 0], "berth check's figures for the seed's pool");

    await readme.run("kubectl delete sts test-sts");
    for (const p of [third0, third1]) {
      await waitForTerminating(NS, p.name);
      c.detach(p.attachment);
      assert.is(claimOf(p.v4!), undefined, `${p.name}: claim released once its StatefulSet is gone`);
      assert.is(endpointOf(NS, p.name), undefined, `${p.name}: endpoint gone`);
      deletePodsNow(NS, [p.name], { force: true });
    }
    await waitForAllocated(POOL, 0, 10_000);
    await assertSp(0);
    await readme.run("kubectl get spiderippool", 10_000);
    readme.end();
  }),
);

S.run();
