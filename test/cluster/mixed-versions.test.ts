/**
 * Mixed versions during an upgrade (issue 8, item 16). The DaemonSet rolls
 * one node at a time and the controller's Deployment rolls on its own, so
 * for a while berth 0.3.0 and the new berth run side by side. Both orders:
 *
 * - controller first: the NEW controller, the 0.3.0 plugin on node1 and the
 *   new plugin on node2; then node1 is rolled to the new plugin.
 * - DaemonSet first: the 0.3.0 controller (`berth controller` of the same old
 *   binary), the 0.3.0 plugin on node1 and the new plugin on node2; node1 is
 *   rolled; then the controller is replaced by the new one.
 *
 * Throughout, StatefulSet members (the real StatefulSet controller
 * recreating them; one scale-down with no DEL, a scale-up) and plain pods are
 * created and deleted across both nodes, half of the deletions without DEL
 * (the pod just goes, as when its node dies), and member mx-0 moves from the
 * 0.3.0 node to the new one and back, keeping its address. After every batch:
 * no address on two living pods, every running pod's address claimed by it
 * (Churn.check in churn-env.ts). At the end, once the controller has caught
 * up: every claim owned by a living pod or an in-range member, the pool's
 * count equal to its claims, no pending lease left on a node.
 *
 * Controller first also shows that the new controller does not judge claims
 * that 0.3.0 wrote (no spec.addDeadlineSeconds) half-finished before 615 s:
 * a 0.3.0 ADD whose endpoint write the fault proxy holds for 8 s, and a
 * 0.3.0 ADD killed right after its claim (BERTH_FAULT=kill-after-claim), both
 * outlive --add-timeout-seconds 5 with several scans in between and keep
 * their claims; the killed one is freed by the kubelet's DEL, run by the new
 * plugin after the node was rolled. It also shows why the network
 * configurations must be fixed first: one whose dataDir 0.3.0 accepted is
 * refused by the new plugin (code 7, ADD and DEL alike) on a node that does
 * not allow its path.
 *
 * The 0.3.0 binary is built once from its commit (test/harness/old-berth.ts,
 * cached in ~/.cache/berth); a failed build fails the tests.
 *
 * Address range: 10.6.180.1-200 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster mixed-versions.test.ts
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { controlPlane } from "../harness/control-plane.ts";
import { FaultProxy } from "../harness/fault-proxy.ts";
import { OLD_VERSION, oldBerth } from "../harness/old-berth.ts";
import { BERTH } from "../helpers/berth.ts";
import { type ChurnNode, type Running, Churn } from "./churn-env.ts";
import { type ClusterScope, PLUGIN_KUBECONFIG, apply, inBatches, podArgs, poolManifest } from "./cluster-env.ts";
import { CONTROLLER_KUBECONFIG, ControllerProc, adminMust, leasesOn, podsPath, sleep, startController, withControllers } from "./controller-env.ts";

const S = suite("cluster: mixed versions during an upgrade");

const RESYNC = 3;
const SET = "mx";
const REPLICAS = 4;
const PLAIN_LIVE = 10;
const PLAIN_NAMES = 24;
/** How long the fault proxy holds the slow 0.3.0 ADD's endpoint write (0.3.0 gives up on a request after 10 s). */
const HOLD_MS = 8000;
const BATCH = { plain: 4, members: 2, plainNames: PLAIN_NAMES };
/** Batches while node1 runs 0.3.0, and after it was rolled. */
const MIXED_BATCHES = Number(process.env.BERTH_MIXED_BATCHES ?? 4);
const ROLLED_BATCHES = Number(process.env.BERTH_MIXED_ROLLED_BATCHES ?? 2);

/** berth_releases_total by reason, from a controller's /metrics (0.3.0 and new alike). */
async function releases(ctl: ControllerProc): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [k, v] of await ctl.metrics()) {
    const m = /^berth_releases_total\{reason="([^"]+)"\}$/.exec(k);
    if (m) out[m[1]] = v;
  }
  return out;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** The StatefulSet and the first plain pods, members spread over the nodes (mx-0 on the first). */
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

/** mx-0, on the 0.3.0 node: deleted with DEL there, recreated on the new node; deleted there without DEL, recreated on the 0.3.0 node. Same address throughout. */
async function moveAcross(ch: Churn, oldNode: ChurnNode, newNode: ChurnNode, where: string): Promise<void> {
  const first = ch.live.get(`${SET}-0`)!;
  assert.is(first.node.sim, oldNode.sim, `${where}: ${SET}-0 starts on the 0.3.0 node`);
  const there = await ch.moveMember(first, newNode, true);
  assert.is(there.address, first.address, `${where}: ${SET}-0 moved from berth ${OLD_VERSION} to the new berth keeps ${first.address}`);
  await ch.check(`${where}: ${SET}-0 on ${newNode.sim.name}`);
  const back = await ch.moveMember(there, oldNode, false);
  assert.is(back.address, first.address, `${where}: ${SET}-0 moved back to berth ${OLD_VERSION} keeps ${first.address}`);
  await ch.check(`${where}: ${SET}-0 back on ${oldNode.sim.name}`);
}

/** `n` churn batches; the scale-down (its member removed without DEL) in the second, when `scaleDown`. */
async function churn(ch: Churn, n: number, phase: string, scaleDown: boolean, log: () => string): Promise<void> {
  for (let b = 1; b <= n; b++) {
    await ch.batch(BATCH);
    if (scaleDown && b === 2) await ch.scaleDown(SET, 1, false);
    await ch.check(`${phase}, batch ${b} (${ch.stats.cycles} cycles)`, log);
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

S(
  "controller first: the new controller with the 0.3.0 plugin on one node and the new plugin on another, then the node rolled: no address on two pods, no leak, 0.3.0 claims not released early",
  () =>
    withControllers({ tag: "mixa", namespaces: ["berth-mixed-a"], pools: ["mixed-a"] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      const old = oldBerth();
      const NS = "berth-mixed-a";
      const POOL = "mixed-a";
      const ADD_TIMEOUT = 5;
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.180.1-10.6.180.100"] }));
      const n1: ChurnNode = { sim: c.node("node1"), bin: old, version: OLD_VERSION };
      const n2: ChurnNode = { sim: c.node("node2"), bin: BERTH, version: "new" };
      const ch = new Churn(c, { tag: "mixa", ns: NS, pool: POOL, nodes: [n1, n2], timeoutSeconds: 10, parallel: 4 });
      const ctl = await startController({ identity: "mixed-a-new", resyncSeconds: RESYNC, addTimeoutSeconds: ADD_TIMEOUT });
      await ctl.waitLeader();
      const log = () => ctl.logTail(15);
      /** Claims the controller released (or would have) before their ADD's time was up: asserted last, so the rest runs anyway. */
      const early: string[] = [];

      // A network configuration 0.3.0 accepted, on a node that allows no extra path prefixes: the new plugin refuses it.
      const plainPod = async (name: string, node: ChurnNode) =>
        (
          await adminMust("POST", podsPath(NS), {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name, namespace: NS, annotations: ch.annotations },
            spec: { nodeName: node.sim.name, containers: [{ name: "app", image: "nginx" }] },
          })
        ).metadata.uid as string;
      const strictNode = { BERTH_NODE_CONFIG: join(c.tempDir("no-node-config"), "node.json") };
      {
        const uid = await plainPod("paths-new", n2);
        const r = await ch.plugin(n2, "ADD", { containerId: randomBytes(32).toString("hex"), args: podArgs(NS, "paths-new", uid), env: strictNode });
        assert.ok(
          r.status !== 0 && r.json?.code === 7,
          `the new plugin refuses a dataDir outside /var/lib/cni/ that the node does not allow (code 7): ${r.stdout}`,
        );
        assert.match(r.json.msg, "ipam.dataDir");
        assert.equal(
          (await ch.listClaims()).filter((cl) => cl.spec.podName === "paths-new"),
          [],
          "nothing claimed",
        );
        const uidOld = await plainPod("paths-old", n1);
        const cid = randomBytes(32).toString("hex");
        const o = await ch.plugin(n1, "ADD", { containerId: cid, args: podArgs(NS, "paths-old", uidOld), env: strictNode });
        assert.is(o.status, 0, `berth ${OLD_VERSION} accepted the same configuration: ${o.stdout} ${o.stderr}`);
        // Had node1 been rolled now, the new plugin could not even tear that sandbox down.
        const d = await ch.plugin({ ...n1, bin: BERTH, version: "new" }, "DEL", { containerId: cid, args: podArgs(NS, "paths-old", uidOld), env: strictNode });
        assert.ok(d.status !== 0 && d.json?.code === 7, `the new plugin refuses the DEL too (code 7): ${d.stdout}`);
        await ch.remove({ name: "paths-old", uid: uidOld, node: n1, containerId: cid, address: o.json.ips[0].address.split("/")[0] }, true);
        await ch.deleteNow("paths-new");
      }

      await populate(ch);
      await ch.check("start", log);

      // A 0.3.0 ADD killed right after it created its claim: the claim has no recorded deadline.
      const crashUid = await plainPod("crash-0", n1);
      const crashCid = randomBytes(32).toString("hex");
      ch.sandboxes.get("node1")!.add(crashCid); // the runtime knows the sandbox (and will DEL it)
      const killed = await ch.plugin(n1, "ADD", { containerId: crashCid, args: podArgs(NS, "crash-0", crashUid), env: { BERTH_FAULT: "kill-after-claim" } });
      assert.is.not(killed.status, 0, "the killed ADD did not succeed");
      const crashClaims = (await ch.listClaims()).filter((cl) => cl.spec.podName === "crash-0");
      assert.is(crashClaims.length, 1, "the killed 0.3.0 ADD left its claim");
      const crashClaim = crashClaims[0];
      assert.is(crashClaim.spec.addDeadlineSeconds, undefined, "a 0.3.0 claim records no deadline");
      const killedAt = Date.now();

      // A slow 0.3.0 ADD: the fault proxy holds its endpoint write for 8 s (0.3.0 gives a request 10 s; its timeoutSeconds is 30).
      const plane = controlPlane();
      const proxy = await FaultProxy.start({ upstream: plane.server, pkiDir: join(plane.dir, "pki") });
      try {
        const token = /^\s*token:\s*(\S+)/m.exec(readFileSync(PLUGIN_KUBECONFIG, "utf8"))![1];
        const kubeconfig = join(c.tempDir("proxy"), "berth.kubeconfig");
        writeFileSync(kubeconfig, proxy.kubeconfig(token), { mode: 0o600 });
        proxy.rule({ method: "POST", path: /\/berthendpoints/, action: "delay", ms: HOLD_MS, times: 1 });
        const slowNode: ChurnNode = { ...n1, kubeconfig };
        const slowUid = await plainPod("slow-0", n1);
        const slowCid = randomBytes(32).toString("hex");
        ch.sandboxes.get("node1")!.add(slowCid);
        const slow = (async () => {
          const started = Date.now();
          const o = await ch.plugin(slowNode, "ADD", {
            containerId: slowCid,
            args: podArgs(NS, "slow-0", slowUid),
            stdin: ch.conf(slowNode, { timeoutSeconds: 30 }),
          });
          const secs = ((Date.now() - started) / 1000).toFixed(1);
          ch.sandboxes.get("node1")!.delete(slowCid);
          assert.is(o.status, 0, `the slow 0.3.0 ADD succeeded (${secs} s): ${o.stdout} ${o.stderr}`);
          const r: Running = { name: "slow-0", uid: slowUid, node: n1, containerId: slowCid, address: o.json.ips[0].address.split("/")[0] };
          const cl = (await ch.listClaims()).find((x) => x.spec.address === r.address);
          if (cl && cl.spec.containerID === slowCid && !cl.spec.addDeadlineSeconds) {
            ch.live.set(r.name, r);
            return secs;
          }
          early.push(
            `the slow 0.3.0 ADD of slow-0 (${secs} s, its endpoint write held ${HOLD_MS / 1000} s) returned ${r.address}, whose claim is ${cl ? `now held by ${cl.spec.podName} (container ${cl.spec.containerID.slice(0, 12)})` : "gone"}: the controller released it as half-finished after --add-timeout-seconds ${ADD_TIMEOUT} instead of 615 s`,
          );
          await ch.remove(r, true); // the address is not its own: take the pod away, so the rest of the run stays meaningful
          return secs;
        })();
        slow.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile

        // Phase 1, mixed: node1 0.3.0, node2 new.
        await moveAcross(ch, n1, n2, "mixed");
        await churn(ch, MIXED_BATCHES, "mixed", true, log);
        const slowSecs = await slow;
        assert.ok(proxy.faults().length === 1, "the proxy held one endpoint write");
        console.error(`[mixa] the slow 0.3.0 ADD took ${slowSecs} s`);
      } finally {
        await proxy.close();
      }

      // The killed ADD's claim: older than --add-timeout-seconds by several scans, and still there.
      while (Date.now() - killedAt < (ADD_TIMEOUT + 3 * RESYNC + 1) * 1000) await sleep(250);
      await ctl.waitScans(1);
      const stillThere = (await ch.listClaims()).find((cl) => cl.metadata.name === crashClaim.metadata.name);
      if (!stillThere || stillThere.metadata.uid !== crashClaim.metadata.uid) {
        early.push(
          `the claim ${crashClaim.metadata.name} of the killed 0.3.0 ADD (crash-0, no recorded deadline) was released ${((Date.now() - killedAt) / 1000).toFixed(0)} s after it was written (--add-timeout-seconds ${ADD_TIMEOUT}); a 0.3.0 claim has 615 s`,
        );
      }

      // Roll node1: the DaemonSet replaced its binary. The kubelet's DEL of the killed sandbox now runs the new plugin.
      n1.bin = BERTH;
      n1.version = "new";
      await ch.del(n1, crashCid, "crash-0", crashUid, "DEL of the killed 0.3.0 sandbox");
      ch.sandboxes.get("node1")!.delete(crashCid);
      assert.equal(
        (await ch.listClaims()).filter((cl) => cl.spec.containerID === crashCid),
        [],
        "the new plugin's DEL freed the killed 0.3.0 ADD's claim",
      );
      assert.equal(
        leasesOn(n1.sim).filter((l) => l.container_id === crashCid),
        [],
        "and its pending lease",
      );
      ch.live.set("crash-0", await ch.add("crash-0", crashUid, n1));
      await ch.check("node1 rolled", log);

      // Phase 2: both nodes new.
      await ch.scaleUp(SET, REPLICAS);
      await churn(ch, ROLLED_BATCHES, "rolled", false, log);

      const end = await ch.converge("controller first", 40_000, true, log);
      await ch.check("end", log);
      assert.equal(pendingLeases(ch.nodes), [], "no pending lease left on a node");
      const rel = await releases(ctl);
      summary("mixa", ch, Date.now() - t0, rel, end.claims.length);
      assert.ok(ch.stats.withoutDel >= 5 && ch.stats.withDel >= 5, "both kinds of deletion happened");
      assert.ok(ch.stats.moves >= 2, "a member moved between the 0.3.0 and the new node");
      assert.ok(sum(rel) > 0, "the controller released what no DEL did");
      assert.equal(ch.failures, [], "no ADD failed");
      if (rel["half-finished-add"])
        early.push(
          `the controller released ${rel["half-finished-add"]} claim(s) as half-finished ADDs (none was: the killed one is the kubelet's DEL's to free)`,
        );
      assert.equal(early, [], "no claim released as half-finished before its ADD's time was up");
    }),
);

S(
  "DaemonSet first: the 0.3.0 controller with the new plugin beside the 0.3.0 plugin, then the node rolled, then the controller: no address on two pods, no leak",
  () =>
    withControllers({ tag: "mixb", namespaces: ["berth-mixed-b"], pools: ["mixed-b"] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      const old = oldBerth();
      const NS = "berth-mixed-b";
      const POOL = "mixed-b";
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.180.101-10.6.180.200"] }));
      const n1: ChurnNode = { sim: c.node("node1"), bin: old, version: OLD_VERSION };
      const n2: ChurnNode = { sim: c.node("node2"), bin: BERTH, version: "new" };
      // While the 0.3.0 controller runs, its rule holds: ADDs must finish within its --add-timeout-seconds (10 here).
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
      try {
        await oldCtl.waitLeader();
        await populate(ch);
        await ch.check("start", log);

        // Phase 1, mixed plugins, 0.3.0 controller.
        await moveAcross(ch, n1, n2, "mixed");
        await churn(ch, MIXED_BATCHES, "mixed", true, log);

        // Roll node1; phase 2: new plugins, 0.3.0 controller.
        n1.bin = BERTH;
        n1.version = "new";
        await ch.scaleUp(SET, REPLICAS);
        await churn(ch, ROLLED_BATCHES, "rolled", false, log);
        const before = await ch.converge("new plugins, 0.3.0 controller", 40_000, true, log);
        await ch.check("before the controller upgrade", log);
        const oldRel = await releases(oldCtl);
        assert.ok(sum(oldRel) > 0, "the 0.3.0 controller released what no DEL did");

        // Roll the controller: the 0.3.0 leader hands the lease over on SIGTERM, the new one takes over and agrees.
        await oldCtl.stop();
        ctl = await startController({ identity: "mixed-b-new", resyncSeconds: RESYNC, addTimeoutSeconds: 10 });
        await ctl.waitLeader();
        await ctl.waitScans(2);
        const end = await ch.converge("controller rolled", 20_000, true, log);
        await ch.check("after the controller upgrade", log);
        assert.equal(
          end.claims.map((cl) => cl.metadata.name).sort(),
          before.claims.map((cl) => cl.metadata.name).sort(),
          "the new controller released nothing the 0.3.0 one kept",
        );
        assert.equal(pendingLeases(ch.nodes), [], "no pending lease left on a node");
        summary("mixb", ch, Date.now() - t0, { ...oldRel }, end.claims.length);
        assert.ok(ch.stats.withoutDel >= 5 && ch.stats.withDel >= 5, "both kinds of deletion happened");
        assert.ok(ch.stats.moves >= 2, "a member moved between the 0.3.0 and the new node");
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
