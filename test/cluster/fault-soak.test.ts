/**
 * Soak under faults (issue 8, "Also"): pod create/delete cycles on three
 * simulated nodes with `berth controller` running, as in
 * controller-soak.test.ts (two StatefulSets with Parallel pod management,
 * plain pods with reused names, scale-downs and scale-ups, half of the
 * deletions without DEL), but every plugin call reaches the API server
 * through the TLS fault proxy (test/support/fault-proxy.ts):
 *
 * - ~10% of the plugin's writes (POST, PUT, PATCH, DELETE) on berthipclaims
 *   and berthendpoints are forwarded and their response dropped: the server
 *   did the write, the plugin never hears;
 * - ~10% of its requests (reads too) are delayed by up to 1.5 s, before
 *   forwarding or (half of them) after the server answered.
 *
 * The controller reaches the API server through a second proxy that drops
 * the response of ~10% of its writes on claims, endpoints and pools (not its
 * Lease) and delays some, and answers 500 (a Status) in the server's place
 * to ~10% of its PUTs and DELETEs of BerthEndpoints, so that some releases
 * leave a phantom binding and some repairs fail (BERTH_FAULT_SOAK_CONTROLLER=
 * direct: no proxy). The kubelet retries: a failed ADD gets its DEL and a
 * new sandbox (for up to 2 minutes per pod), a failed DEL is repeated.
 *
 * Interleaved with the churn (issue 17):
 * - namespace deletion during grace (namespace-churn.ts): a namespace of its
 *   own whose 4 pods fill a pool of their own is deleted after every batch;
 *   its endpoints go at once, its pods stay Terminating (120 s grace, or 2 s
 *   that run out) through the settling and the checks, and another pod
 *   asking for their pool must then find it full; at the next batch their
 *   kubelet finishes them (half with DEL) and a namespace is created again
 *   with new pods of the same names (three namespaces taken in turn: the
 *   namespace controller takes ~40 s to remove one once its pods are gone);
 * - mirror-pod recreation (mirror-churn.ts): one static pod per node, ADDed
 *   with its config hash as UID; in the background its mirror pod is
 *   force-deleted and re-created (new UID, same hash) after a random gap.
 *
 * Checked at every batch, after the namespace deletion and after settling
 * (Churn.check in churn.ts, the static pods and the second namespace's
 * pods included): no address on two living pods (by the ADD results and the
 * living pods' endpoints) or on two interfaces, every running pod's address
 * claimed by it (a static pod's, and a Terminating pod's, too), a recreated
 * member back on its address. Checked after every batch has settled (the ADD
 * deadline, here timeoutSeconds 5 → a claim's addDeadlineSeconds 15, then one
 * full controller pass): every claim owned by a living pod or an in-range
 * StatefulSet member, or rightly held: a static pod's (its mirror there or
 * not), a Terminating pod's in the deleted namespace, or one whose endpoint
 * entry the controller's last write (failed: 500) was to put back; every
 * endpoint entry's address claimed by its pod, but where the controller's
 * last write to strip it failed. At the end, faults off: the same without
 * any of those exceptions but the static pods, the pools' counts equal their
 * claims, the controller released no static pod's address and no address of
 * the second namespace's pods before their kubelet finished them, and no ADD
 * failed with 102 (a conflict: an ADD insisting on a phantom's address).
 * (timeoutSeconds 3 works on a quiet machine; on two busy cores a fault-free
 * ADD alone can take longer, and the kubelet's retries then never end.)
 *
 * Knobs (environment): BERTH_FAULT_SOAK_CYCLES (default 150),
 * BERTH_FAULT_SOAK_DROP (fraction of writes whose response is dropped, 0.1),
 * BERTH_FAULT_SOAK_DELAY (fraction of requests delayed, 0.1),
 * BERTH_FAULT_SOAK_TIMEOUT_SECONDS (the ipam block's timeoutSeconds, 5),
 * BERTH_FAULT_SOAK_MAX_DELAY_MS (1500), BERTH_FAULT_SOAK_PARALLEL (ADDs
 * at a time, 4), BERTH_FAULT_SOAK_CONTROLLER (proxy|direct),
 * BERTH_FAULT_SOAK_ENDPOINT_FAIL (fraction of the controller's endpoint
 * PUTs and DELETEs answered 500, 0.1), BERTH_FAULT_SOAK_CONTROLLER_BIN (the
 * controller's binary: dist/berth; a 0.4.0 binary fails the soak).
 *
 * Address range: 10.6.181.1-250, and 10.6.184.1-4 for the second namespace
 * (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster fault-soak.test.ts
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { claimDeadlineSeconds } from "../../plugin/cluster/cluster-add.ts";
import { ENDPOINT_PLURAL } from "../../plugin/kube/crd.ts";
import { BERTH } from "../support/berth.ts";
import { Churn, type ChurnNode, type Explain, type Holder } from "../support/cluster/churn.ts";
import { apply, type ClusterScope, PLUGIN_KUBECONFIG, path, poolManifest } from "../support/cluster/cluster-env.ts";
import { CONTROLLER_KUBECONFIG, ControllerProc, sleep, waitForAsync, withControllers } from "../support/cluster/controller-env.ts";
import { MirrorChurn } from "../support/cluster/mirror-churn.ts";
import { NamespaceChurn } from "../support/cluster/namespace-churn.ts";
import { controlPlane } from "../support/control-plane.ts";
import { type FaultAction, FaultProxy } from "../support/fault-proxy.ts";
import { tokenOf } from "../support/kube/kubeconfig-token.ts";

const num = (name: string, dflt: number) => (process.env[name] === undefined || process.env[name] === "" ? dflt : Number(process.env[name]));
const NS = "berth-fault-soak";
const POOL = "fault-soak";
const CYCLES = num("BERTH_FAULT_SOAK_CYCLES", 150);
const DROP = num("BERTH_FAULT_SOAK_DROP", 0.1);
const DELAY = num("BERTH_FAULT_SOAK_DELAY", 0.1);
const MAX_DELAY_MS = num("BERTH_FAULT_SOAK_MAX_DELAY_MS", 1500);
const CONTROLLER_VIA_PROXY = (process.env.BERTH_FAULT_SOAK_CONTROLLER ?? "proxy") !== "direct";
const TIMEOUT_SECONDS = num("BERTH_FAULT_SOAK_TIMEOUT_SECONDS", 5);
/** The controller's binary: another berth's (BERTH_FAULT_SOAK_CONTROLLER_BIN=…/berth-0.4.0) shows what the soak catches. */
const CONTROLLER_BIN = process.env.BERTH_FAULT_SOAK_CONTROLLER_BIN || BERTH;
const RESYNC = 3;
/** --add-timeout-seconds: at most the claims' recorded deadline, so a controller that reads none judges no later. */
const ADD_TIMEOUT = 10;
/** How long after its last write a claim of these ADDs may still belong to one running. */
const ADD_DEADLINE_S = Math.max(ADD_TIMEOUT, claimDeadlineSeconds(TIMEOUT_SECONDS * 1000));
const PLAIN_PER_BATCH = 20;
const MEMBERS_PER_BATCH = 6;
const PARALLEL = num("BERTH_FAULT_SOAK_PARALLEL", 4);
const SETS = ["fs-a", "fs-b"];
const REPLICAS = 4;
const PLAIN_NAMES = 36;
const PLAIN_LIVE = 20;
/** The namespaces deleted during grace (taken in turn), their pool (exactly one address per pod), and their pods' grace periods. */
const NS_GONE = ["berth-fault-soak-gone-0", "berth-fault-soak-gone-1", "berth-fault-soak-gone-2"];
const POOL_GONE = "fault-soak-gone";
const GONE_PODS = 4;
const GONE_GRACES = [120, 2];
const ENDPOINT_FAIL = num("BERTH_FAULT_SOAK_ENDPOINT_FAIL", 0.1);
/** A mirror pod lives up to this long before it is deleted, and comes back after up to this long (ms). */
const MIRROR_LIFE_MS = 12_000;
const MIRROR_GAP_MS = 12_000;

const S = suite("cluster: soak under faults");

const WRITES = ["POST", "PUT", "PATCH", "DELETE"];
const DELAY_STEPS = 6;

/**
 * The plugin's faults: a dropped response on `DROP` of the writes to claims
 * and endpoints, then delays of MAX_DELAY_MS/6 .. MAX_DELAY_MS on about
 * `DELAY` of all requests (before forwarding, or after the server answered).
 */
function pluginFaults(proxy: FaultProxy): void {
  for (const method of WRITES) proxy.rule({ method, path: /\/(berthipclaims|berthendpoints)\b/, action: "drop-response", probability: DROP });
  // Rules are tried in order: step i acts with probability p once the ones before it did not, ~DELAY in all.
  const p = 1 - (1 - DELAY) ** (1 / DELAY_STEPS);
  for (let i = 1; i <= DELAY_STEPS; i++) {
    const action: FaultAction = i % 2 ? "delay" : "delay-response";
    proxy.rule({ path: /./, action, ms: Math.round((MAX_DELAY_MS * i) / DELAY_STEPS), probability: p });
  }
}

/** The API server's answer to a write that failed on its side. */
const FAILURE = {
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message: "injected by the fault soak",
  reason: "InternalError",
  code: 500,
};

/**
 * The controller's faults: writes on claims, endpoints and pools only (its
 * Lease and its watches pass untouched); first, a 500 to ENDPOINT_FAIL of its
 * PUTs and DELETEs of endpoints (the server did nothing).
 */
function controllerFaults(proxy: FaultProxy): void {
  for (const method of ["PUT", "DELETE"])
    proxy.rule({ method, path: /\/berthendpoints\/[^/?]+/, action: "answer", status: 500, body: FAILURE, probability: ENDPOINT_FAIL });
  for (const method of WRITES) proxy.rule({ method, path: /\/(berthipclaims|berthendpoints|spiderippools)\b/, action: "drop-response", probability: DROP });
  for (const method of WRITES)
    proxy.rule({ method, path: /\/(berthipclaims|berthendpoints|spiderippools)\b/, action: "delay", ms: MAX_DELAY_MS, probability: DELAY / 2 });
}

function faultCounts(proxy: FaultProxy): Record<string, number> {
  const out: Record<string, number> = { requests: proxy.log.length };
  for (const r of proxy.faults()) out[r.fault!] = (out[r.fault!] ?? 0) + 1;
  return out;
}

/** A claim held for a pod in `holders` (same pod, UID and address); a static pod's must say it is one. */
function holderOf(holders: Holder[], spec: { podNamespace: string; podName: string; podUID: string; address: string; staticPod?: boolean }) {
  const h = holders.find((h) => h.ns === spec.podNamespace && h.name === spec.podName && h.uid === spec.podUID && h.address === spec.address);
  return h && (h.why !== "static pod" || spec.staticPod) ? h : undefined;
}

S(
  `soak under faults: ${CYCLES} create/delete cycles through the fault proxy (${DROP * 100}% of writes lose their response, delays up to ${MAX_DELAY_MS} ms, ${ENDPOINT_FAIL * 100}% of the controller's endpoint writes fail), a namespace deleted during grace, mirror pods re-created, the controller running: never an address on two living pods or two interfaces, every claim owned or rightly held once settled, no phantom left`,
  () =>
    withControllers({ tag: "fsoak", namespaces: [NS, ...NS_GONE], pools: [POOL, POOL_GONE] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.181.1-10.6.181.250"] }));
      apply(poolManifest(POOL_GONE, { subnet: "10.6.0.0/16", ips: [`10.6.184.1-10.6.184.${GONE_PODS}`] }));
      const plane = controlPlane();
      const pki = join(plane.dir, "pki");
      const proxy = await FaultProxy.start({ upstream: plane.server, pkiDir: pki });
      const ctlProxy = CONTROLLER_VIA_PROXY ? await FaultProxy.start({ upstream: plane.server, pkiDir: pki }) : undefined;
      let ctl: ControllerProc | undefined;
      let mirrors: MirrorChurn | undefined;
      try {
        const dir = c.tempDir("kubeconfigs");
        const pluginKc = join(dir, "berth.kubeconfig");
        writeFileSync(pluginKc, proxy.kubeconfig(tokenOf(PLUGIN_KUBECONFIG)), { mode: 0o600 });
        let controllerKc = CONTROLLER_KUBECONFIG;
        if (ctlProxy) {
          controllerKc = join(dir, "controller.kubeconfig");
          writeFileSync(controllerKc, ctlProxy.kubeconfig(tokenOf(CONTROLLER_KUBECONFIG)), { mode: 0o600 });
        }
        ctl = await ControllerProc.start({
          bin: CONTROLLER_BIN,
          kubeconfig: controllerKc,
          identity: "fault-soak",
          resyncSeconds: RESYNC,
          addTimeoutSeconds: ADD_TIMEOUT,
        });
        const log = () => `controller:\n${ctl!.logTail(15)}`;
        await ctl.waitLeader();

        const nodes: ChurnNode[] = ["node1", "node2", "node3"].map((n) => ({ sim: c.node(n), bin: BERTH, kubeconfig: pluginKc, version: "new" }));
        const churnOptions = {
          nodes,
          timeoutSeconds: TIMEOUT_SECONDS,
          addBudgetMs: 120_000,
          delAttempts: 30,
          faults: true,
          parallel: PARALLEL,
          requestLog: {
            mark: () => proxy.log.length,
            since: (m: number) =>
              proxy.log
                .slice(m)
                .map((r) => `  ${r.method} ${r.path.slice(0, 110)} ${r.status ?? "-"}${r.fault ? ` [${r.fault}]` : ""}`)
                .slice(0, 80)
                .join("\n"),
          },
        };
        // The second namespace's pods and the static pods join the churn's checks.
        let gone: NamespaceChurn | undefined;
        const holders = () => [...(gone?.holders() ?? []), ...(mirrors?.holders() ?? [])];
        // The churns share the simulated nodes: a node's GC (after a stale lease) lists every sandbox its runtime runs.
        const alsoValid = (node: string): string[] => [
          ...(gone?.sandboxesOn(node) ?? []),
          ...(mirrors?.sandboxesOn(node) ?? []),
          ...[ch, ...chGone].flatMap((x) => [...x.live.values()].filter((r) => r.node.sim.name === node).map((r) => r.containerId)),
          ...[ch, ...chGone].flatMap((x) => [...x.sandboxes.get(node)!]),
        ];
        const ch = new Churn(c, {
          tag: "fsoak",
          ns: NS,
          pool: POOL,
          ...churnOptions,
          alsoValid,
          others: () => ({ holders: holders(), namespaces: NS_GONE }),
        });
        const chGone = NS_GONE.map((ns) => new Churn(c, { tag: "fsoak-gone", ns, pool: POOL_GONE, ...churnOptions, alsoValid }));
        gone = new NamespaceChurn({ churns: chGone, pods: GONE_PODS, graces: GONE_GRACES, withDel: 0.5 });
        mirrors = new MirrorChurn({ churn: ch, lifeMs: MIRROR_LIFE_MS, gapMs: MIRROR_GAP_MS });
        // The squatter asks straight, not through the faults: its answer must be "pool full", nothing else.
        const direct: ChurnNode = { ...nodes[0], kubeconfig: undefined };

        // Start without faults: the StatefulSets' members, the first plain pods, the second namespace, the static pods.
        await ch.populate(SETS, REPLICAS, PLAIN_LIVE, PLAIN_NAMES);
        await gone.start();
        await mirrors.start();
        await ch.check("start", log);

        pluginFaults(proxy);
        if (ctlProxy) controllerFaults(ctlProxy);
        mirrors.shake();

        /**
         * Whether the controller's last write (PUT, DELETE) to endpoint NS/NAME
         * since the proxy's log entry `mark` was answered 500 in the server's
         * place: then what it was to change (an entry to strip or to put back)
         * is left to its next pass.
         */
        let writeMark = 0;
        const lastWriteFailed = (ns: string, name: string): boolean => {
          if (!ctlProxy) return false;
          const endpoint = path(ENDPOINT_PLURAL, { ns, name });
          for (let i = ctlProxy.log.length - 1; i >= writeMark; i--) {
            const r = ctlProxy.log[i];
            if ((r.method === "PUT" || r.method === "DELETE") && r.path.split("?")[0] === endpoint) return r.fault === "answer";
          }
          return false;
        };
        /** Claims rightly held that the churn's own rules do not own (faults: `failed` lets a failed endpoint write explain). */
        const explainWith =
          (failed: boolean): Explain =>
          (cl, f) => {
            const h = holderOf(holders(), cl.spec);
            if (h && (f.listed || !h.listed)) return h.why === "static pod" ? `static pod, mirror ${f.pod ? "there" : "gone"}` : h.why;
            if (failed && !f.listed && (f.owned || h) && lastWriteFailed(cl.spec.podNamespace, cl.spec.podName)) return "endpoint entry being written back";
            return undefined;
          };
        const explained = new Map<string, number>();
        let phantomsLeft = 0;

        /**
         * Waits out the ADD deadline since the batch ended, then one full
         * controller pass; then the checks hold, every claim is owned or
         * rightly held, and every endpoint entry's address is claimed by its pod.
         */
        const settled = async (where: string, since: number) => {
          writeMark = ctlProxy?.log.length ?? 0;
          while (Date.now() - since < ADD_DEADLINE_S * 1000 + 500) await sleep(250);
          await ctl!.waitScans(2, 30_000); // the second starts after the deadline has passed
          await ch.check(`${where}, settled${gone!.deleting ? `, ${gone!.ns} being deleted` : ""}`, log);
          // The deleted namespace's churn judges its pool: the claims of earlier rounds' (finished) pods must be gone.
          for (const churn of [ch, gone!.churn]) {
            const p = await churn.unexplained(explainWith(true));
            assert.equal(
              p.unexplained.map((cl) => cl.spec),
              [],
              `${where}, settled (${ADD_DEADLINE_S} s + a controller pass): every claim of pool ${churn.o.pool} owned by a living pod or an in-range member, or rightly held\n${log()}`,
            );
            for (const [why, n] of p.explained) explained.set(why, (explained.get(why) ?? 0) + n);
          }
          const phantoms = await ch.phantoms(NS_GONE);
          const left = phantoms.filter((x) => lastWriteFailed(x.ns, x.name));
          phantomsLeft += left.length;
          assert.equal(
            phantoms.filter((x) => !left.includes(x)),
            [],
            `${where}, settled: no phantom binding (an endpoint entry whose address is not its pod's) but where the controller's last write to strip it failed\n${log()}`,
          );
        };

        let batch = 0;
        let settleMs = 0;
        while (ch.stats.cycles < CYCLES) {
          batch++;
          const where = `batch ${batch} (${ch.stats.cycles} cycles)`;
          const left = CYCLES - ch.stats.cycles;
          await Promise.all([
            ch.batch({
              plain: Math.min(PLAIN_PER_BATCH, left),
              members: Math.min(MEMBERS_PER_BATCH, Math.max(0, left - PLAIN_PER_BATCH)),
              plainNames: PLAIN_NAMES,
            }),
            // The deleted namespace's pods are finished by their kubelet at last; a namespace comes back with new pods.
            batch > 1 ? gone.finish().then(() => gone!.start()) : undefined,
          ]);
          // Every 2nd batch a set (the two in turn) is scaled down by two (one member gets its DEL, one does not); the
          // next scales it back up (a release whose endpoint write failed leaves the member a phantom to come back to).
          const set = SETS[Math.floor(batch / 2) % 2];
          if (batch % 2 === 0 && ch.stats.cycles < CYCLES) await ch.scaleDown(set, 2, true);
          else if (batch % 2 === 1 && batch > 1) await ch.scaleUp(set, REPLICAS);
          await ch.check(where, log);
          // kubectl delete namespace: its endpoints go at once, its pods stay Terminating through the settling.
          await gone.deleteNamespace();
          const s0 = Date.now();
          await settled(where, Date.now());
          settleMs += Date.now() - s0;
          await gone.assertDeleting();
          await gone.squat(NS, direct, log);
        }
        const soakMs = Date.now() - t0;

        // The end: the static pods' mirrors back, the deleted namespace's pods finished, faults off; everything owned and counted.
        await mirrors.stop();
        await gone.finish();
        proxy.clear();
        ctlProxy?.clear();
        const end = await ch.converge("the end", 30_000, true, log, explainWith(false));
        await gone.churn.converge("the end: the deleted namespaces' finished pods released", 30_000, true, log);
        await waitForAsync("the end: no phantom binding left", async () => (await ch.phantoms(NS_GONE)).length === 0, 30_000, 500).catch(async (err) => {
          throw new Error(`${(err as Error).message}: ${JSON.stringify(await ch.phantoms(NS_GONE))}\n${log()}`);
        });
        await ch.check("end", log);

        // The controller's own account: nothing released that a pod may have been using.
        const staticReleases = ctl.releases((r) => r.pod.startsWith(`${NS}/static-`));
        assert.equal(staticReleases, [], "no static pod's address released while it runs");
        const early = ctl.releases((r) => r.pool === POOL_GONE && gone!.holderAt(r.address, r.time) !== undefined);
        assert.equal(early, [], "no address of the deleted namespaces' pods released before their kubelet finished them");
        assert.equal(
          [ch, ...chGone].flatMap((x) => x.conflicts),
          [],
          "no ADD failed with 102 (insisting on an address that is not its own)",
        );

        const rel: Record<string, number> = {};
        const repairs: Record<string, number> = {};
        for (const [k, v] of await ctl.metrics()) {
          const m = /^berth_releases_total\{reason="([^"]+)"\}$/.exec(k);
          if (m) rel[m[1]] = v;
          const r = /^berth_endpoint_repairs_total\{action="([^"]+)"\}$/.exec(k);
          if (r) repairs[r[1]] = v;
        }
        const s = ch.stats;
        const g = gone.stats;
        const st = mirrors.stats;
        const pf = faultCounts(proxy);
        console.error(
          `[fsoak] ${s.cycles} cycles in ${batch} batches, ${(soakMs / 1000).toFixed(1)} s (${(settleMs / 1000).toFixed(0)} s of it settling): ${s.withDel} with DEL, ${s.withoutDel} without; ` +
            `${s.adds} ADDs (${s.addRetries} failed and retried: ${s.faultedAdds} under faults, ${s.staleLeaseGcs} after a stale local lease + GC), ${s.delRetries} DELs repeated, ` +
            `${s.sticky} members back on their address (${s.moves} on another node), ${s.scaleDowns} scale-downs, ${s.checks} checks; ` +
            `a namespace deleted ${g.deletions} times with ${g.heldPods} pods Terminating in it (then ${g.finishedWithDel} finished with DEL, ${g.finishedWithoutDel} without; ${chGone.reduce((n, x) => n + x.stats.adds, 0)} ADDs), ${g.squatsRefused} squatters refused its full pool; ` +
            `${st.mirrorsDeleted} mirror pods deleted and ${st.mirrorsRecreated} re-created (longest gap ${(st.longestGapMs / 1000).toFixed(1)} s); ` +
            `claims rightly held at the settles (summed over them) ${JSON.stringify(Object.fromEntries(explained))}, ${phantomsLeft} phantoms left there to a failed strip; ` +
            `plugin proxy ${JSON.stringify(pf)}; controller proxy ${ctlProxy ? JSON.stringify(faultCounts(ctlProxy)) : "none (direct)"}; ` +
            `controller released ${JSON.stringify(rel)}, repaired ${JSON.stringify(repairs)}; ${end.claims.length} claims at the end for ${ch.live.size} running pods and ${mirrors.holders().length} static pods`,
        );
        const reasons = [...ch.faultReasons, ...chGone.flatMap((x) => [...x.faultReasons])].sort((a, b) => b[1] - a[1]).slice(0, 8);
        if (reasons.length) console.error(`[fsoak] ADD failures under faults, by message:\n  ${reasons.map(([m, n]) => `${n}× ${m}`).join("\n  ")}`);
        assert.ok(s.cycles >= CYCLES);
        assert.ok(s.withoutDel > 10 && s.withDel > 10, "both kinds of deletion happened");
        assert.ok(g.deletions >= 2 && g.squatsRefused === g.deletions, "the namespace was deleted and re-created, and each time its pool stayed full");
        assert.ok(st.mirrorsRecreated > 0, "mirror pods were deleted and re-created");
        if (DROP > 0) assert.ok((pf["drop-response"] ?? 0) > 0, "the plugin's proxy dropped responses");
        if (DELAY > 0) assert.ok((pf.delay ?? 0) + (pf["delay-response"] ?? 0) > 0, "the plugin's proxy delayed requests");
        if (ctlProxy && ENDPOINT_FAIL > 0) assert.ok((faultCounts(ctlProxy).answer ?? 0) > 0, "the controller's endpoint writes failed");
      } catch (err) {
        if (ctl)
          console.error(
            `\n[fsoak] controller ${ctl.identity} (pid ${ctl.pid}, ${ctl.alive ? "running" : `exited ${JSON.stringify(ctl.exit)}`}), last lines:\n${ctl.logTail(40)}\n`,
          );
        throw err;
      } finally {
        await mirrors?.stop().catch((e) => console.error(`[fsoak] mirror churn: ${(e as Error).message}`));
        if (ctl?.alive) await ctl.stop(10_000).catch((e) => console.error(`[fsoak] ${(e as Error).message}`));
        await proxy.close();
        await ctlProxy?.close();
      }
    }),
);

S.run();
