/**
 * Soak under faults (issue 8, "Also"): pod create/delete cycles on three
 * simulated nodes with `berth controller` running, as in
 * controller-soak.test.ts (two StatefulSets with Parallel pod management,
 * plain pods with reused names, scale-downs and scale-ups, half of the
 * deletions without DEL), but every plugin call reaches the API server
 * through the TLS fault proxy (test/harness/fault-proxy.ts):
 *
 * - ~10% of the plugin's writes (POST, PUT, PATCH, DELETE) on berthipclaims
 *   and berthendpoints are forwarded and their response dropped: the server
 *   did the write, the plugin never hears;
 * - ~10% of its requests (reads too) are delayed by up to 1.5 s, before
 *   forwarding or (half of them) after the server answered.
 *
 * The controller reaches the API server through a second proxy that drops
 * the response of ~10% of its writes on claims, endpoints and pools (not its
 * Lease) and delays some (BERTH_FAULT_SOAK_CONTROLLER=direct: no proxy).
 * The kubelet retries: a failed ADD gets its DEL and a new sandbox (for up
 * to 2 minutes per pod), a failed DEL is repeated.
 *
 * Checked at every batch (Churn.check in churn-env.ts): no address on two
 * living pods (by the ADD results and the living pods' endpoints), every
 * running pod's address claimed by it, a recreated member back on its
 * address. Checked after every batch has settled (the ADD deadline, here
 * timeoutSeconds 5 → a claim's addDeadlineSeconds 15, then one full
 * controller pass): every claim owned by a living pod or an in-range
 * StatefulSet member. At the end also: the pool's count equals its claims.
 * (timeoutSeconds 3 works on a quiet machine; on two busy cores a fault-free
 * ADD alone can take longer, and the kubelet's retries then never end.)
 *
 * Knobs (environment): BERTH_FAULT_SOAK_CYCLES (default 150),
 * BERTH_FAULT_SOAK_DROP (fraction of writes whose response is dropped, 0.1),
 * BERTH_FAULT_SOAK_DELAY (fraction of requests delayed, 0.1),
 * BERTH_FAULT_SOAK_TIMEOUT_SECONDS (the ipam block's timeoutSeconds, 5),
 * BERTH_FAULT_SOAK_MAX_DELAY_MS (1500), BERTH_FAULT_SOAK_PARALLEL (ADDs
 * at a time, 4), BERTH_FAULT_SOAK_CONTROLLER (proxy|direct).
 *
 * Address range: 10.6.181.1-250 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster fault-soak.test.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { claimDeadlineSeconds } from "../../plugin/cluster/cluster-add.ts";
import { controlPlane } from "../harness/control-plane.ts";
import { type FaultAction, FaultProxy } from "../harness/fault-proxy.ts";
import { BERTH } from "../helpers/berth.ts";
import { type ChurnNode, Churn } from "./churn-env.ts";
import { type ClusterScope, PLUGIN_KUBECONFIG, apply, poolManifest } from "./cluster-env.ts";
import { CONTROLLER_KUBECONFIG, ControllerProc, sleep, withControllers } from "./controller-env.ts";

const num = (name: string, dflt: number) => (process.env[name] === undefined || process.env[name] === "" ? dflt : Number(process.env[name]));
const NS = "berth-fault-soak";
const POOL = "fault-soak";
const CYCLES = num("BERTH_FAULT_SOAK_CYCLES", 150);
const DROP = num("BERTH_FAULT_SOAK_DROP", 0.1);
const DELAY = num("BERTH_FAULT_SOAK_DELAY", 0.1);
const MAX_DELAY_MS = num("BERTH_FAULT_SOAK_MAX_DELAY_MS", 1500);
const CONTROLLER_VIA_PROXY = (process.env.BERTH_FAULT_SOAK_CONTROLLER ?? "proxy") !== "direct";
const TIMEOUT_SECONDS = num("BERTH_FAULT_SOAK_TIMEOUT_SECONDS", 5);
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

/** The controller's faults: writes on claims, endpoints and pools only (its Lease and its watches pass untouched). */
function controllerFaults(proxy: FaultProxy): void {
  for (const method of WRITES) proxy.rule({ method, path: /\/(berthipclaims|berthendpoints|spiderippools)\b/, action: "drop-response", probability: DROP });
  for (const method of WRITES)
    proxy.rule({ method, path: /\/(berthipclaims|berthendpoints|spiderippools)\b/, action: "delay", ms: MAX_DELAY_MS, probability: DELAY / 2 });
}

function tokenOf(kubeconfig: string): string {
  const t = /^\s*token:\s*(\S+)/m.exec(readFileSync(kubeconfig, "utf8"))?.[1];
  if (!t) throw new Error(`${kubeconfig}: no token`);
  return t;
}

function faultCounts(proxy: FaultProxy): Record<string, number> {
  const out: Record<string, number> = { requests: proxy.log.length };
  for (const r of proxy.faults()) out[r.fault!] = (out[r.fault!] ?? 0) + 1;
  return out;
}

S(
  `soak under faults: ${CYCLES} create/delete cycles through the fault proxy (${DROP * 100}% of writes lose their response, delays up to ${MAX_DELAY_MS} ms), the controller running: never an address on two living pods, every claim owned once settled`,
  () =>
    withControllers({ tag: "fsoak", namespaces: [NS], pools: [POOL] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.181.1-10.6.181.250"] }));
      const plane = controlPlane();
      const pki = join(plane.dir, "pki");
      const proxy = await FaultProxy.start({ upstream: plane.server, pkiDir: pki });
      const ctlProxy = CONTROLLER_VIA_PROXY ? await FaultProxy.start({ upstream: plane.server, pkiDir: pki }) : undefined;
      let ctl: ControllerProc | undefined;
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
          bin: BERTH,
          kubeconfig: controllerKc,
          identity: "fault-soak",
          resyncSeconds: RESYNC,
          addTimeoutSeconds: ADD_TIMEOUT,
        });
        const log = () => `controller:\n${ctl!.logTail(15)}`;
        await ctl.waitLeader();

        const nodes: ChurnNode[] = ["node1", "node2", "node3"].map((n) => ({ sim: c.node(n), bin: BERTH, kubeconfig: pluginKc, version: "new" }));
        const ch = new Churn(c, {
          tag: "fsoak",
          ns: NS,
          pool: POOL,
          nodes,
          timeoutSeconds: TIMEOUT_SECONDS,
          addBudgetMs: 120_000,
          delAttempts: 30,
          faults: true,
          parallel: PARALLEL,
          requestLog: {
            mark: () => proxy.log.length,
            since: (m) =>
              proxy.log
                .slice(m)
                .map((r) => `  ${r.method} ${r.path.slice(0, 110)} ${r.status ?? "-"}${r.fault ? ` [${r.fault}]` : ""}`)
                .slice(0, 80)
                .join("\n"),
          },
        });

        // Start without faults: the StatefulSets' members and the first plain pods.
        await ch.populate(SETS, REPLICAS, PLAIN_LIVE, PLAIN_NAMES);
        await ch.check("start", log);

        pluginFaults(proxy);
        if (ctlProxy) controllerFaults(ctlProxy);

        /** Waits out the ADD deadline since the batch ended, then one full controller pass; every claim must then be owned. */
        const settled = async (where: string, since: number) => {
          while (Date.now() - since < ADD_DEADLINE_S * 1000 + 500) await sleep(250);
          await ctl!.waitScans(2, 30_000); // the second starts after the deadline has passed
          const p = await ch.unexplained();
          assert.equal(
            p.unexplained.map((cl) => cl.spec),
            [],
            `${where}, settled (${ADD_DEADLINE_S} s + a controller pass): every claim owned by a living pod or an in-range member\n${log()}`,
          );
        };

        let batch = 0;
        let settleMs = 0;
        while (ch.stats.cycles < CYCLES) {
          batch++;
          const where = `batch ${batch} (${ch.stats.cycles} cycles)`;
          const left = CYCLES - ch.stats.cycles;
          await ch.batch({
            plain: Math.min(PLAIN_PER_BATCH, left),
            members: Math.min(MEMBERS_PER_BATCH, Math.max(0, left - PLAIN_PER_BATCH)),
            plainNames: PLAIN_NAMES,
          });
          // Every 4th batch a set is scaled down by two (one member gets its DEL, one does not); the next scales it back up.
          const set = SETS[Math.floor(batch / 4) % 2];
          if (batch % 4 === 2 && ch.stats.cycles < CYCLES) await ch.scaleDown(set, 2, true);
          else if (batch % 4 === 3) await ch.scaleUp(set, REPLICAS);
          await ch.check(where, log);
          const s0 = Date.now();
          await settled(where, Date.now());
          settleMs += Date.now() - s0;
        }
        const soakMs = Date.now() - t0;

        // The end: faults off, everything owned and counted.
        proxy.clear();
        ctlProxy?.clear();
        const end = await ch.converge("the end", 30_000, true, log);
        await ch.check("end", log);
        const rel: Record<string, number> = {};
        for (const [k, v] of await ctl.metrics()) {
          const m = /^berth_releases_total\{reason="([^"]+)"\}$/.exec(k);
          if (m) rel[m[1]] = v;
        }
        const s = ch.stats;
        const pf = faultCounts(proxy);
        console.error(
          `[fsoak] ${s.cycles} cycles in ${batch} batches, ${(soakMs / 1000).toFixed(1)} s (${(settleMs / 1000).toFixed(0)} s of it settling): ${s.withDel} with DEL, ${s.withoutDel} without; ` +
            `${s.adds} ADDs (${s.addRetries} failed and retried: ${s.faultedAdds} under faults, ${s.staleLeaseGcs} after a stale local lease + GC), ${s.delRetries} DELs repeated, ` +
            `${s.sticky} members back on their address (${s.moves} on another node), ${s.scaleDowns} scale-downs, ${s.checks} checks; ` +
            `plugin proxy ${JSON.stringify(pf)}; controller proxy ${ctlProxy ? JSON.stringify(faultCounts(ctlProxy)) : "none (direct)"}; ` +
            `controller released ${JSON.stringify(rel)}; ${end.claims.length} claims at the end for ${ch.live.size} running pods`,
        );
        const reasons = [...ch.faultReasons].sort((a, b) => b[1] - a[1]).slice(0, 8);
        if (reasons.length) console.error(`[fsoak] ADD failures under faults, by message:\n  ${reasons.map(([m, n]) => `${n}× ${m}`).join("\n  ")}`);
        assert.ok(s.cycles >= CYCLES);
        assert.ok(s.withoutDel > 10 && s.withDel > 10, "both kinds of deletion happened");
        if (DROP > 0) assert.ok((pf["drop-response"] ?? 0) > 0, "the plugin's proxy dropped responses");
        if (DELAY > 0) assert.ok((pf.delay ?? 0) + (pf["delay-response"] ?? 0) > 0, "the plugin's proxy delayed requests");
      } catch (err) {
        if (ctl)
          console.error(
            `\n[fsoak] controller ${ctl.identity} (pid ${ctl.pid}, ${ctl.alive ? "running" : `exited ${JSON.stringify(ctl.exit)}`}), last lines:\n${ctl.logTail(40)}\n`,
          );
        throw err;
      } finally {
        if (ctl?.alive) await ctl.stop(10_000).catch((e) => console.error(`[fsoak] ${(e as Error).message}`));
        await proxy.close();
        await ctlProxy?.close();
      }
    }),
);

S.run();
