/**
 * Soak: 500 pod create/delete cycles on three simulated nodes with `berth
 * controller` running, mixed over two StatefulSets (Parallel pod management,
 * the real StatefulSet controller recreating members, scale-downs and
 * scale-ups) and plain pods (names reused). Some deletions get the kubelet's
 * DEL (deletionTimestamp, DEL, final delete), some never do (the pod is just
 * removed: its node is gone), so the controller has real work throughout.
 *
 * After every batch: no address is held by two running pods (by the ADD
 * results, and by the living pods' BerthEndpoints), every running pod's
 * address is claimed by it (the controller never took one away), and a
 * recreated StatefulSet member got its address back. At the end: every claim
 * belongs to a living pod or a StatefulSet binding in range, and the pool's
 * counts match the claims.
 *
 * The churn itself (scheduler, kubelet, the checks) is churn.ts's, shared
 * with the fault soak and the mixed-versions test; dist/berth is called
 * directly (no interface).
 *
 * Address range: 10.6.176.1-250 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster controller-soak.test.ts
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BERTH } from "../support/berth.ts";
import { Churn, type ChurnNode } from "../support/cluster/churn.ts";
import { apply, type ClusterScope, poolManifest, waitFor } from "../support/cluster/cluster-env.ts";
import { startController, withControllers } from "../support/cluster/controller-env.ts";

const NS = "berth-ctl-soak";
const POOL = "ctl-soak";
const CYCLES = 500;
const PLAIN_PER_BATCH = 16;
const MEMBERS_PER_BATCH = 6;
const PARALLEL = 8;
const SETS = ["soak-a", "soak-b"];
const REPLICAS = 4;
const PLAIN_NAMES = 40;
const PLAIN_LIVE = 24;

const S = suite("cluster: controller soak");

S(
  `soak: ${CYCLES} create/delete cycles over StatefulSets and plain pods on 3 nodes, with and without DEL, the controller running: never an address on two pods, nothing left over, counts right`,
  () =>
    withControllers({ tag: "ctlsoak", namespaces: [NS], pools: [POOL] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.176.1-10.6.176.250"] }));
      const ctl = await startController({ identity: "ctl-soak", resyncSeconds: 3, addTimeoutSeconds: 10 });
      await ctl.waitLeader();
      const log = () => `controller:\n${ctl.logTail(10)}`;
      const nodes: ChurnNode[] = ["node1", "node2", "node3"].map((n) => ({ sim: c.node(n), bin: BERTH, version: "new" }));
      const ch = new Churn(c, { tag: "ctlsoak", ns: NS, pool: POOL, nodes, timeoutSeconds: 10, parallel: PARALLEL });

      // Start: the StatefulSets' members and the first plain pods.
      await ch.populate(SETS, REPLICAS, PLAIN_LIVE, PLAIN_NAMES);
      await ch.check("start", log);

      let batch = 0;
      while (ch.stats.cycles < CYCLES) {
        batch++;
        const left = CYCLES - ch.stats.cycles;
        // Plain pods: some removed (half with DEL), as many new ones (names reused); members deleted and recreated
        // by the StatefulSet controller (half with DEL).
        const plain = Math.min(PLAIN_PER_BATCH, left);
        await ch.batch({ plain, members: Math.min(MEMBERS_PER_BATCH, Math.max(0, left - plain)), plainNames: PLAIN_NAMES });
        // Every 5th batch a set is scaled down by two (one member gets its DEL, one does not); the next batch scales
        // it back up: new members, new addresses.
        const set = SETS[Math.floor(batch / 5) % 2];
        if (batch % 5 === 2 && ch.stats.cycles < CYCLES) await ch.scaleDown(set, 2, true);
        else if (batch % 5 === 3) await ch.scaleUp(set, REPLICAS);
        await ch.check(`batch ${batch} (${ch.stats.cycles} cycles)`, log);
      }
      const soakMs = Date.now() - t0;

      // The end: let the controller finish what no DEL released, then every claim must be accounted for.
      const end = await ch.converge("the end", 30_000, true, log);
      await ch.check("end", log);
      assert.ok(end.claims.length >= ch.live.size, "at least one claim per running pod");
      assert.is(await ctl.metric(`berth_pool_allocated{pool="${POOL}"}`), end.claims.length, "the controller's metric agrees");
      await waitFor("the controller to be leading still", () => ctl.alive, 1000);

      const rel = ctl.releases((r) => r.pod.startsWith(`${NS}/`));
      const reasons: Record<string, number> = {};
      for (const r of rel) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
      const s = ch.stats;
      console.error(
        `[ctlsoak] ${s.cycles} cycles in ${batch} batches, ${(soakMs / 1000).toFixed(1)} s: ${s.withDel} with DEL, ${s.withoutDel} without; ` +
          `${s.adds} ADDs (${s.addRetries} retried, ${s.staleLeaseGcs} after a stale local lease + GC), ${s.sticky} members back on their address ` +
          `(${s.moves} on another node), ${s.scaleDowns} scale-downs, ${s.checks} checks; ` +
          `controller released ${rel.length} (${JSON.stringify(reasons)}); ${end.claims.length} claims at the end for ${ch.live.size} running pods`,
      );
      if (ch.failures.length) console.error(`[ctlsoak] other ADD failures (retried by the kubelet):\n  ${ch.failures.slice(0, 10).join("\n  ")}`);
      assert.ok(s.cycles >= CYCLES);
      assert.ok(s.withoutDel > 50 && s.withDel > 50, "both kinds of deletion happened");
      assert.ok(rel.length > 0, "the controller released what no DEL did");
      assert.equal(ch.failures, [], "no ADD failed for any other reason");
    }),
);

S.run();
