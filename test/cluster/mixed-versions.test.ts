/**
 * Mixed versions during the upgrade from 0.4 to 0.5 (issue 17, "Also
 * required"). The DaemonSet rolls one node at a time and the controller's
 * Deployment rolls on its own, so for a while berth 0.4.0 and 0.5 run side
 * by side. Both orders:
 *
 * - controller first: the 0.5 controller, the 0.4.0 plugin on node1 and the
 *   0.5 plugin on node2; then node1 is rolled to 0.5.
 * - DaemonSet first: the 0.4.0 controller (`berth controller` of the same old
 *   binary), the 0.4.0 plugin on node1 and the 0.5 plugin on node2; node1 is
 *   rolled; then the controller is replaced by the 0.5 one.
 *
 * Throughout, StatefulSet members (the real StatefulSet controller
 * recreating them; one scale-down with no DEL, a scale-up) and plain pods are
 * created and deleted across both nodes, half of the deletions without DEL
 * (the pod just goes, as when its node dies), and member mx-0 moves from the
 * 0.4.0 node to the 0.5 one and back, keeping its address: an endpoint entry
 * written by 0.4.0 (no per-entry `podUID` or `network`) is read right by the
 * 0.5 ADD, and one written by 0.5 by the 0.4.0 ADD. After every batch: no
 * address on two living pods, every running pod's address claimed by it
 * (Churn.check in churn.ts). At the end, once the controller has caught
 * up: every claim owned by a living pod or an in-range member, the pool's
 * count equal to its claims, no pending lease left on a node.
 *
 * Controller first also shows the rules README's upgrade notes say a 0.5
 * controller keeps whatever the plugins, on pods whose plugin is 0.4.0:
 * - `kubectl delete bep` under a running pod and a running member: the
 *   entries are written back, the claims untouched; the pod's sandbox
 *   restart (0.4.0 DEL and ADD) and the member's recreation (0.4.0 ADD) get
 *   the same address;
 * - a pod stuck Terminating past its grace period, and a Succeeded pod whose
 *   DEL has not come (the test nodes report no kubelet version, so the phase
 *   proves nothing): both keep their addresses through the churn until their
 *   DEL, which the 0.5 plugin runs after node1 was rolled.
 * DaemonSet first asserts no 0.5 rule while the 0.4.0 controller runs (it
 * releases in the windows issue 17 closed), only the invariants above; the
 * 0.5 controller that replaces it finds nothing to release or repair.
 *
 * The 0.4.0 binary is built once from its commit (test/support/old-berth.ts,
 * cached in ~/.cache/berth); a failed build fails the tests.
 *
 * Address range: 10.6.180.1-200 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster mixed-versions.test.ts
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ENDPOINT_PLURAL } from "../../plugin/kube/crd.ts";
import type { EndpointObject } from "../../plugin/kube/kube-api.ts";
import { BERTH } from "../support/berth.ts";
import { Churn, type ChurnNode, type Running } from "../support/cluster/churn.ts";
import { admin, apply, type ClusterScope, inBatches, path, poolManifest } from "../support/cluster/cluster-env.ts";
import { CONTROLLER_KUBECONFIG, ControllerProc, leasesOn, sleep, startController, waitForAsync, withControllers } from "../support/cluster/controller-env.ts";
import type { StoredPod } from "../support/kube/stored.ts";
import { OLD_VERSION, oldBerth } from "../support/old-berth.ts";

const S = suite("cluster: mixed versions during the upgrade from 0.4 to 0.5");

const RESYNC = 3;
const SET = "mx";
const REPLICAS = 4;
const PLAIN_LIVE = 10;
const PLAIN_NAMES = 24;
const BATCH = { plain: 4, members: 2, plainNames: PLAIN_NAMES };
/** Batches while node1 runs 0.4.0, and after it was rolled. */
const MIXED_BATCHES = Number(process.env.BERTH_MIXED_BATCHES ?? 4);
const ROLLED_BATCHES = Number(process.env.BERTH_MIXED_ROLLED_BATCHES ?? 2);
/** The controller's margin after a pod's grace period (controller-main.ts) before a Terminating pod counts as stuck. */
const GRACE_MARGIN_MS = 5000;

/** berth_releases_total by reason, from a controller's /metrics (0.4.0 and 0.5 alike). */
async function releases(ctl: ControllerProc): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, v] of await ctl.metrics()) {
    const m = /^berth_releases_total\{reason="([^"]+)"\}$/.exec(k);
    if (m) out[m[1]] = v;
  }
  return out;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** The BerthEndpoint (its entries' podUID and network: the fields 0.5 adds, 0.4.0 writes neither). */
async function endpoint(ns: string, name: string): Promise<EndpointObject | undefined> {
  const r = await admin.request<EndpointObject>("GET", path(ENDPOINT_PLURAL, { ns, name }));
  return r.status === 200 ? r.body : undefined;
}

const listed = (ep: EndpointObject | undefined, address: string) => !!ep?.spec.ips.some((i) => i.ipv4?.split("/")[0] === address);

/** The StatefulSet and the first plain pods, members spread over the nodes (mx-0 and mx-2 on the first). */
async function populate(ch: Churn): Promise<void> {
  ch.createStatefulSet(SET, REPLICAS);
  await inBatches(
    Array.from({ length: REPLICAS }, (_, i) => i),
    ch.parallel,
    (i) => ch.startMember(SET, `${SET}-${i}`, undefined, ch.nodes[i % ch.nodes.length]),
  );
  await inBatches(
    Array.from({ length: PLAIN_LIVE }, () => ch.freeName(PLAIN_NAMES)),
    ch.parallel,
    (n) => ch.createPlain(n),
  );
}

/** Asserts that `r`'s endpoint entry is as berth 0.4.0 writes it: no per-entry podUID or network. */
async function assertOldEntry(ns: string, r: Running, where: string): Promise<void> {
  const ep = await endpoint(ns, r.name);
  const e = ep?.spec.ips.find((i) => i.interface === "eth0");
  assert.ok(e && e.ipv4?.split("/")[0] === r.address, `${where}: ${r.name}'s endpoint lists ${r.address}: ${JSON.stringify(ep?.spec)}`);
  assert.equal([e.podUID, e.network], [undefined, undefined], `${where}: ${r.name}'s entry was written by berth ${OLD_VERSION} (no podUID, no network)`);
}

/**
 * mx-0, on the 0.4.0 node: deleted with DEL there, recreated on the 0.5 node
 * (its entry as 0.4.0 wrote it); deleted there without DEL, recreated on the
 * 0.4.0 node (its entry as 0.5 wrote it). Same address throughout.
 */
async function moveAcross(ch: Churn, oldNode: ChurnNode, newNode: ChurnNode, where: string): Promise<void> {
  const first = ch.live.get(`${SET}-0`)!;
  assert.is(first.node.sim, oldNode.sim, `${where}: ${SET}-0 starts on the ${OLD_VERSION} node`);
  await assertOldEntry(ch.o.ns, first, where);
  const there = await ch.moveMember(first, newNode, true);
  assert.is(there.address, first.address, `${where}: ${SET}-0 moved from berth ${OLD_VERSION} to berth 0.5 keeps ${first.address}`);
  const e = (await endpoint(ch.o.ns, there.name))?.spec.ips.find((i) => i.interface === "eth0");
  assert.equal([e?.podUID, e?.network], [there.uid, ch.conf(newNode).name], `${where}: berth 0.5 wrote its entry with the incarnation and the network`);
  await ch.check(`${where}: ${SET}-0 on ${newNode.sim.name}`);
  const back = await ch.moveMember(there, oldNode, false);
  assert.is(back.address, first.address, `${where}: ${SET}-0 moved back to berth ${OLD_VERSION} keeps ${first.address}`);
  await ch.check(`${where}: ${SET}-0 back on ${oldNode.sim.name}`);
}

/** `n` churn batches; the scale-down (its member removed without DEL) in the second, when `scaleDown`. `check` after each. */
async function churn(ch: Churn, n: number, phase: string, scaleDown: boolean, check: (when: string) => Promise<void>): Promise<void> {
  for (let b = 1; b <= n; b++) {
    await ch.batch(BATCH);
    if (scaleDown && b === 2) await ch.scaleDown(SET, 1, false);
    await check(`${phase}, batch ${b} (${ch.stats.cycles} cycles)`);
  }
}

/** Every pending lease left on the nodes' databases (an ADD in flight or interrupted and never resolved). */
function pendingLeases(nodes: ChurnNode[]): string[] {
  return nodes.flatMap((n) =>
    leasesOn(n.sim)
      .filter((l) => l.state === "pending")
      .map((l) => `${n.sim.name}: ${l.address} container ${l.container_id.slice(0, 12)} (${l.pod_name})`),
  );
}

function summary(tag: string, ch: Churn, ms: number, rel: Record<string, number>, claims: number): void {
  const s = ch.stats;
  console.error(
    `[${tag}] ${s.cycles} cycles in ${(ms / 1000).toFixed(1)} s: ${s.withDel} with DEL, ${s.withoutDel} without; ${s.adds} ADDs (${s.addRetries} retried, ${s.staleLeaseGcs} after a stale local lease + GC), ` +
      `${s.sticky} members back on their address (${s.moves} moved to another node), ${s.scaleDowns} scale-down(s), ${s.checks} checks; controller releases ${JSON.stringify(rel)}; ${claims} claims at the end for ${ch.live.size} running pods`,
  );
  if (ch.failures.length) console.error(`[${tag}] ADD failures (retried by the kubelet):\n  ${ch.failures.slice(0, 10).join("\n  ")}`);
}

/** A plain pod on `node` that the churn does not touch (its name is outside the churn's), and its ADD; its sandbox is known to the runtime. */
async function outsider(ch: Churn, name: string, node: ChurnNode, graceSeconds?: number): Promise<Running> {
  const created = await admin.create<StoredPod>(path("pods", { ns: ch.o.ns }), {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ch.o.ns, annotations: ch.annotations },
    spec: {
      nodeName: node.sim.name,
      ...(graceSeconds === undefined ? {} : { terminationGracePeriodSeconds: graceSeconds }),
      containers: [{ name: "app", image: "nginx" }],
    },
  });
  const r = await ch.add(name, created.metadata.uid, node);
  // The runtime keeps its sandbox until its DEL: a GC on the node must treat it as valid.
  ch.sandboxes.get(node.sim.name)!.add(r.containerId);
  return r;
}

S(
  "controller first: the 0.5 controller with the 0.4.0 plugin on one node and the 0.5 plugin on another, then the node rolled: no address on two pods, no leak; lost endpoints, stuck and finished pods keep their addresses",
  () =>
    withControllers({ tag: "mixa", namespaces: ["berth-mixed-a"], pools: ["mixed-a"] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      const old = oldBerth();
      const NS = "berth-mixed-a";
      const POOL = "mixed-a";
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.180.1-10.6.180.100"] }));
      const n1: ChurnNode = { sim: c.node("node1"), bin: old, version: OLD_VERSION };
      const n2: ChurnNode = { sim: c.node("node2"), bin: BERTH, version: "0.5" };
      const ch = new Churn(c, { tag: "mixa", ns: NS, pool: POOL, nodes: [n1, n2], timeoutSeconds: 10, parallel: 4 });
      const ctl = await startController({ identity: "mixed-a-new", resyncSeconds: RESYNC, addTimeoutSeconds: 5 });
      await ctl.waitLeader();
      const log = () => ctl.logTail(15);

      /** Pods whose DEL has not come although their pod object says they are done: their addresses must stay theirs. */
      const held: { r: Running; claimUid: string; why: string }[] = [];
      const check = async (when: string) => {
        await ch.check(when, log);
        const claims = await ch.listClaims();
        for (const h of held) {
          const cl = claims.find((x) => x.spec.address === h.r.address);
          assert.ok(
            cl && cl.metadata.uid === h.claimUid && cl.spec.containerID === h.r.containerId,
            `${when}: ${h.r.name} (${h.why}, berth ${h.r.node.version} on ${h.r.node.sim.name}) keeps ${h.r.address}; its claim is ${cl ? `${cl.spec.podName} container ${cl.spec.containerID.slice(0, 12)}` : "gone"}\n${log()}`,
          );
          const other = [...ch.live.values()].find((r) => r.address === h.r.address);
          assert.not.ok(other, `${when}: ${h.r.address} of ${h.r.name} (${h.why}) was given to ${other?.name}`);
        }
      };
      const claimUid = async (address: string) => (await ch.listClaims()).find((x) => x.spec.address === address)!.metadata.uid;

      await populate(ch);
      await ch.check("start", log);

      // Endpoints written by 0.4.0 are read by the 0.5 ADD on the other node, with DEL (mx-0) and without (mx-2).
      await moveAcross(ch, n1, n2, "mixed");
      {
        const m2 = ch.live.get(`${SET}-2`)!;
        assert.is(m2.node.sim, n1.sim, `${SET}-2 runs on the ${OLD_VERSION} node`);
        await assertOldEntry(NS, m2, "mixed");
        const there = await ch.moveMember(m2, n2, false);
        assert.is(there.address, m2.address, `${SET}-2 removed from berth ${OLD_VERSION} without DEL, recreated on berth 0.5, keeps ${m2.address}`);
        await check("mixed: mx-2 moved without DEL");
      }

      // A pod stuck Terminating (its 1 s grace period runs out, its DEL never comes) and a Succeeded pod whose DEL has not come.
      const stuck = await outsider(ch, "stuck-0", n1, 1);
      const done = await outsider(ch, "done-0", n1);
      held.push({ r: stuck, claimUid: await claimUid(stuck.address), why: "Terminating, its DEL not come" });
      held.push({ r: done, claimUid: await claimUid(done.address), why: "Succeeded, its DEL not come" });
      await admin.must("DELETE", path("pods", { ns: NS, name: "stuck-0" }));
      await admin.patch(path("pods", { ns: NS, name: "done-0", sub: "status" }), { status: { phase: "Succeeded" } });
      const stuckSince = Date.now();

      // kubectl delete bep under a running pod and a running member, both added by 0.4.0.
      {
        const member = ch.live.get(`${SET}-0`)!;
        const plain = [...ch.live.values()].find((r) => !r.set && r.node.sim === n1.sim) ?? (await ch.createPlain(ch.freeName(PLAIN_NAMES), n1));
        const lost = [member, plain];
        for (const r of lost) assert.is(r.node.version, OLD_VERSION, `${r.name} was added by berth ${OLD_VERSION}`);
        const before = new Map(
          (await ch.listClaims()).filter((cl) => lost.some((r) => r.address === cl.spec.address)).map((cl) => [cl.spec.address, cl.metadata.resourceVersion]),
        );
        for (const r of lost) await admin.must("DELETE", path(ENDPOINT_PLURAL, { ns: NS, name: r.name }));
        for (const r of lost) {
          await waitForAsync(`${r.name}'s endpoint entry to be written back`, async () => listed(await endpoint(NS, r.name), r.address), 60_000, 250);
        }
        const after = await ch.listClaims();
        for (const r of lost) {
          const cl = after.find((x) => x.spec.address === r.address);
          assert.is(cl?.metadata.resourceVersion, before.get(r.address), `${r.name}'s claim of ${r.address} untouched while its endpoint was gone\n${log()}`);
        }
        assert.ok(((await ctl.metric('berth_endpoint_repairs_total{action="rebuild-entry"}')) ?? 0) >= 2, "the controller counts the rebuilt entries");
        await check("mixed: endpoints written back");

        // The plain pod's sandbox restarts (0.4.0 DEL of the old one, ADD of a new one): same address.
        await ch.del(n1, plain.containerId, plain.name, plain.uid, "DEL of a restarting sandbox");
        const restarted = await ch.add(plain.name, plain.uid, n1);
        assert.is(restarted.address, plain.address, `${plain.name}'s restarted sandbox (berth ${OLD_VERSION}) gets ${plain.address} back`);
        ch.live.set(plain.name, restarted);
        // The member is recreated on the 0.4.0 node without DEL: the 0.4.0 ADD reads the entry the 0.5 controller wrote.
        const again = await ch.moveMember(member, n1, false);
        assert.is(again.address, member.address, `${member.name} recreated on berth ${OLD_VERSION} gets ${member.address} back`);
        await check("mixed: after the endpoints were lost");
        assert.equal(
          ctl.releases((r) => lost.some((x) => r.address === x.address)),
          [],
          "the controller released nothing of theirs",
        );
      }

      // Churn on both versions; by its end the stuck pod is long past its grace period.
      await churn(ch, MIXED_BATCHES, "mixed", true, check);
      while (Date.now() - stuckSince < 1000 + GRACE_MARGIN_MS + 1000) await sleep(250);
      await ctl.waitScans(2);
      await check("mixed: the stuck pod past its grace period");
      await ctl.waitLog(/"msg":"address held".*"held":"terminating"/, 15_000);
      await ctl.waitLog(/"msg":"address held".*"held":"terminal"/, 15_000);

      // Roll node1: the DaemonSet replaced its binary. The kubelet finally tears down the stuck and the finished sandboxes.
      n1.bin = BERTH;
      n1.version = "0.5";
      for (const h of held.splice(0)) {
        await ch.del(n1, h.r.containerId, h.r.name, h.r.uid, `DEL of ${h.r.name}'s sandbox (added by berth ${OLD_VERSION})`);
        ch.sandboxes.get("node1")!.delete(h.r.containerId);
        assert.not.ok(
          (await ch.listClaims()).some((cl) => cl.spec.address === h.r.address),
          `berth 0.5's DEL released ${h.r.name}'s ${h.r.address}`,
        );
        await ch.deleteNow(h.r.name);
      }
      assert.equal(
        ctl.releases((r) => r.pod === `${NS}/stuck-0` || r.pod === `${NS}/done-0`),
        [],
        "the controller released neither the stuck nor the finished pod's address",
      );
      await check("node1 rolled");

      // Phase 2: both nodes 0.5.
      await ch.scaleUp(SET, REPLICAS);
      await churn(ch, ROLLED_BATCHES, "rolled", false, check);

      const end = await ch.converge("controller first", 40_000, true, log);
      await check("end");
      assert.equal(pendingLeases(ch.nodes), [], "no pending lease left on a node");
      const rel = await releases(ctl);
      summary("mixa", ch, Date.now() - t0, rel, end.claims.length);
      assert.ok(ch.stats.withoutDel >= 5 && ch.stats.withDel >= 5, "both kinds of deletion happened");
      assert.ok(ch.stats.moves >= 3, "members moved between the 0.4.0 and the 0.5 node");
      assert.ok(sum(rel) > 0, "the controller released what no DEL did");
      assert.equal(
        ctl.releases((r) => r.pool === POOL && r.reason === "half-finished-add"),
        [],
        "no claim released as a half-finished ADD (every ADD completed)",
      );
      assert.equal(ch.failures, [], "no ADD failed");
    }),
);

S(
  "DaemonSet first: the 0.4.0 controller with the 0.5 plugin beside the 0.4.0 plugin, then the node rolled, then the controller: no address on two pods, no leak",
  () =>
    withControllers({ tag: "mixb", namespaces: ["berth-mixed-b"], pools: ["mixed-b"] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      const old = oldBerth();
      const NS = "berth-mixed-b";
      const POOL = "mixed-b";
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.180.101-10.6.180.200"] }));
      const n1: ChurnNode = { sim: c.node("node1"), bin: old, version: OLD_VERSION };
      const n2: ChurnNode = { sim: c.node("node2"), bin: BERTH, version: "0.5" };
      const ch = new Churn(c, { tag: "mixb", ns: NS, pool: POOL, nodes: [n1, n2], timeoutSeconds: 5, parallel: 4 });
      const oldCtl = await ControllerProc.start({
        bin: old,
        kubeconfig: CONTROLLER_KUBECONFIG,
        identity: "mixed-b-old",
        resyncSeconds: RESYNC,
        addTimeoutSeconds: 10,
      });
      let ctl: ControllerProc = oldCtl;
      const log = () => `controller ${ctl.identity}:\n${ctl.logTail(15)}`;
      const check = (when: string) => ch.check(when, log);
      try {
        await oldCtl.waitLeader();
        await populate(ch);
        await ch.check("start", log);

        // Phase 1, mixed plugins, 0.4.0 controller.
        await moveAcross(ch, n1, n2, "mixed");
        await churn(ch, MIXED_BATCHES, "mixed", true, check);

        // Roll node1; phase 2: 0.5 plugins, 0.4.0 controller.
        n1.bin = BERTH;
        n1.version = "0.5";
        await ch.scaleUp(SET, REPLICAS);
        await churn(ch, ROLLED_BATCHES, "rolled", false, check);
        const before = await ch.converge("0.5 plugins, 0.4.0 controller", 40_000, true, log);
        await ch.check("before the controller upgrade", log);
        const oldRel = await releases(oldCtl);
        assert.ok(sum(oldRel) > 0, "the 0.4.0 controller released what no DEL did");

        // Roll the controller: the 0.4.0 leader hands the lease over on SIGTERM, the 0.5 one takes over and agrees.
        await oldCtl.stop();
        ctl = await startController({ identity: "mixed-b-new", resyncSeconds: RESYNC, addTimeoutSeconds: 10 });
        await ctl.waitLeader();
        await ctl.waitScans(2);
        const end = await ch.converge("controller rolled", 20_000, true, log);
        await ch.check("after the controller upgrade", log);
        assert.equal(
          end.claims.map((cl) => cl.metadata.name).sort(),
          before.claims.map((cl) => cl.metadata.name).sort(),
          "the 0.5 controller released nothing the 0.4.0 one kept",
        );
        // (In this namespace: a namespace an earlier test is deleting may have endpoints whose claims its cleanup removed.)
        const repairs = ctl
          .log()
          .split("\n")
          .filter((l) => /"msg":"(phantom binding stripped|endpoint entry rebuilt from its claim)"/.test(l) && l.includes(`"pod":"${NS}/`));
        assert.equal(repairs, [], "the 0.5 controller found no endpoint of the 0.4.0 era to repair");
        assert.equal(pendingLeases(ch.nodes), [], "no pending lease left on a node");
        summary("mixb", ch, Date.now() - t0, { ...oldRel }, end.claims.length);
        assert.ok(ch.stats.withoutDel >= 5 && ch.stats.withDel >= 5, "both kinds of deletion happened");
        assert.ok(ch.stats.moves >= 2, "a member moved between the 0.4.0 and the 0.5 node");
        assert.equal(ch.failures, [], "no ADD failed");
      } catch (err) {
        console.error(
          `\n[mixb] controller ${oldCtl.identity} (berth ${OLD_VERSION}, pid ${oldCtl.pid}, ${oldCtl.alive ? "running" : `exited ${JSON.stringify(oldCtl.exit)}`}), last lines:\n${oldCtl.logTail(40)}\n`,
        );
        throw err;
      }
    }),
);

S.run();
