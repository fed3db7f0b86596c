/**
 * The API server restarted (scripts/testenv.sh restart-apiserver: only
 * kube-apiserver stops and starts again with the same flags) in the middle of
 * a burst of 30 ADDs from three nodes, with `berth controller` running and
 * work for it in flight (pods removed with no DEL just before). ADDs that fail
 * must fail with code 11; as a kubelet does, each gets its DEL and is retried
 * with a new sandbox. Afterwards: every pod has exactly one address, no
 * address is held by two pods, no claim is left without a living pod, the
 * removed pods' addresses are free, counts are right, no lease is pending on
 * any node, and the controller leads and scans again.
 *
 * Address range: 10.6.177.1-50 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster controller-restart.test.ts
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Outcome } from "../support/berth.ts";
import { ROOT } from "../support/berth.ts";
import {
  admin,
  apply,
  claimsOfPool,
  endpointsIn,
  inBatches,
  path,
  podArgs,
  poolManifest,
  poolStatus,
  type SimNode,
  waitFor,
  waitForAllocated,
} from "../support/cluster/cluster-env.ts";
import { leasesOn, sleep, startController, withControllers } from "../support/cluster/controller-env.ts";
import type { StoredPod } from "../support/kube/stored.ts";

const NS = "berth-ctl-restart";
const POOL = "ctl-restart";
const BURST = 30;
const GONE = 5;
/** The ADD budget (ipam timeoutSeconds) and the controller's --add-timeout-seconds: the controller never judges a claim whose ADD may still run. */
const TIMEOUT_S = 10;

const S = suite("cluster: controller and the API server restarting");

interface Pod {
  name: string;
  uid: string;
  node: SimNode;
}

S(
  `API server restarted during ${BURST} ADDs from 3 nodes and the controller's releases: failed ADDs got 11, and after DEL + retry every pod has exactly one address, nothing is held twice or left over, counts are right`,
  () =>
    withControllers({ tag: "ctlrst", namespaces: [NS], pools: [POOL] }, async (c) => {
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.177.1-10.6.177.50"] }));
      const nodes = ["node1", "node2", "node3"].map((n) => c.node(n));
      const ipamExtra = { timeoutSeconds: TIMEOUT_S };
      const args = (p: Pod) => podArgs(NS, p.name, p.uid);
      const makePods = (prefix: string, n: number) =>
        inBatches(
          Array.from({ length: n }, (_, i) => i),
          8,
          async (i): Promise<Pod> => {
            const node = nodes[i % 3];
            const body = {
              apiVersion: "v1",
              kind: "Pod",
              metadata: { name: `${prefix}-${i}`, namespace: NS, annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [POOL] }) } },
              spec: { nodeName: node.name, containers: [{ name: "app", image: "nginx" }] },
            };
            const created = await admin.create<StoredPod>(path("pods", { ns: NS }), body);
            return { name: created.metadata.name, uid: created.metadata.uid, node };
          },
        );

      // Pods that will be removed (no DEL) right before the restart: the controller's work in flight.
      const gone = await makePods("gone", GONE);
      const goneAddresses: string[] = [];
      for (const p of gone) {
        const o = await c.berthAsync("ADD", p.node, { containerId: randomBytes(32).toString("hex"), args: args(p), ipamExtra });
        assert.is(o.status, 0, `ADD of ${p.name}: ${o.stdout}`);
        goneAddresses.push(o.json.ips[0].address.split("/")[0]);
      }
      const burst = await makePods("burst", BURST);

      const ctl = await startController({ identity: "ctl-restart", resyncSeconds: 3, addTimeoutSeconds: TIMEOUT_S });
      await ctl.waitLeader();
      await ctl.waitScans(1);

      // The burst: one ADD every 500 ms (the restart takes ~15 s); the gone pods removed at 700 ms; the restart starts at 1000 ms.
      const t0 = Date.now();
      let restartOut = "";
      const restart = sleep(1000).then(
        () =>
          new Promise<{ code: number | null; ms: number }>((done) => {
            const started = Date.now();
            const p = spawn("bash", [`${ROOT}/scripts/testenv.sh`, "restart-apiserver"], { stdio: ["ignore", "pipe", "pipe"] });
            p.stdout.on("data", (d) => (restartOut += d));
            p.stderr.on("data", (d) => (restartOut += d));
            p.on("close", (code) => done({ code, ms: Date.now() - started }));
          }),
      );
      const removal = sleep(700).then(() =>
        Promise.all(
          gone.map((p) => admin.must("DELETE", path("pods", { ns: NS, name: p.name }), { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 })),
        ),
      );
      const first = await Promise.all(
        burst.map(async (p, i) => {
          await sleep(i * 500);
          const containerId = randomBytes(32).toString("hex");
          const at = Date.now() - t0;
          const o = await c.berthAsync("ADD", p.node, { containerId, args: args(p), ipamExtra });
          return { p, containerId, o, at, took: Date.now() - t0 - at };
        }),
      );
      await removal;
      const r = await restart;
      assert.is(r.code, 0, `scripts/testenv.sh restart-apiserver: ${restartOut}`);
      const failed = first.filter((x) => x.o.status !== 0);
      const codes = failed.map((x) => x.o.json?.code);
      console.error(
        `[ctlrst] restart took ${r.ms} ms; ${BURST - failed.length} ADDs succeeded, ${failed.length} failed (codes ${JSON.stringify(codes)}) at ${failed.map((x) => `${x.at}+${x.took}`).join(", ")} ms`,
      );
      assert.ok(failed.length > 0, "the restart hit the burst (some ADDs failed)");
      // Asserted last, after the invariants below: an ADD failing during the restart gets code 11 (try again).
      const notEleven = failed.filter((x) => x.o.json?.code !== 11).map((x) => `${x.p.name} at ${x.at}+${x.took} ms: ${x.o.stdout.trim()}`);

      // The kubelet: DEL of each failed sandbox, then a new sandbox and ADD, until it works.
      const final = new Map<string, { containerId: string; address: string; node: SimNode; uid: string }>();
      for (const x of first)
        if (x.o.status === 0) final.set(x.p.name, { containerId: x.containerId, address: x.o.json.ips[0].address.split("/")[0], node: x.p.node, uid: x.p.uid });
      await inBatches(failed, 6, async (x) => {
        let containerId = x.containerId;
        let last: Outcome | undefined;
        for (let attempt = 1; attempt <= 5; attempt++) {
          const d = await c.berthAsync("DEL", x.p.node, { containerId, args: args(x.p), ipamExtra });
          assert.is(d.status, 0, `the kubelet's DEL after a failed ADD of ${x.p.name}: ${d.stdout} ${d.stderr}`);
          containerId = randomBytes(32).toString("hex");
          last = await c.berthAsync("ADD", x.p.node, { containerId, args: args(x.p), ipamExtra });
          if (last.status === 0) {
            final.set(x.p.name, { containerId, address: last.json.ips[0].address.split("/")[0], node: x.p.node, uid: x.p.uid });
            return;
          }
          await sleep(1000);
        }
        assert.unreachable(`${x.p.name}: ADD still failing after 5 retries: ${last?.stdout}`);
      });

      // Every pod exactly one address, all distinct.
      const addresses = [...final.values()].map((f) => f.address);
      assert.is(final.size, BURST);
      assert.is(new Set(addresses).size, BURST, `no address handed to two pods: ${addresses.sort().join(" ")}`);

      // The controller has released the removed pods' addresses; only the burst's claims are left.
      const expected = [...final].map(([name, f]) => `${f.address}=${name}/${f.uid}/${f.containerId}`).sort();
      const claimView = () =>
        claimsOfPool(POOL)
          .map((cl) => `${cl.spec.address}=${cl.spec.podName}/${cl.spec.podUID}/${cl.spec.containerID}`)
          .sort();
      await waitFor(
        `the claims of ${POOL} to be exactly the burst's (now ${claimView().length})\n${ctl.logTail()}`,
        () => JSON.stringify(claimView()) === JSON.stringify(expected),
        25_000,
        500,
      );
      const rel = await ctl.waitReleases((x) => x.pod.startsWith(`${NS}/gone-`), GONE);
      assert.equal(
        rel.map((x) => `${x.pod} ${x.address}`).sort(),
        gone.map((p, i) => `${NS}/${p.name} ${goneAddresses[i]}`).sort(),
        "the controller released each removed pod's address once",
      );
      for (const x of rel) assert.is(x.reason, "pod-deleted");

      // Endpoints: one per burst pod, listing its address; none left for the removed pods; no address twice.
      const eps = endpointsIn(NS);
      assert.equal(eps.map((e) => e.metadata.name).sort(), [...final.keys()].sort(), "endpoints exist for the burst's pods only");
      for (const e of eps) {
        const f = final.get(e.metadata.name)!;
        assert.equal(
          { uid: e.spec.podUID, container: e.spec.containerID, ips: e.spec.ips.map((i) => i.ipv4) },
          { uid: f.uid, container: f.containerId, ips: [`${f.address}/16`] },
          `endpoint ${e.metadata.name}`,
        );
      }
      await waitForAllocated(POOL, BURST, 10_000);
      assert.is(poolStatus(POOL).totalIPCount, 50);

      // Node databases: exactly the final sandboxes, all active.
      for (const node of nodes) {
        const want = [...final.values()]
          .filter((f) => f.node === node)
          .map((f) => `${f.containerId}=${f.address}:active`)
          .sort();
        const have = leasesOn(node)
          .filter((l) => l.pod_name?.startsWith("burst-"))
          .map((l) => `${l.container_id}=${l.address}:${l.state}`)
          .sort();
        assert.equal(have, want, `leases on ${node.name}`);
      }

      // The controller came through: leading, scanning, pool metrics right.
      await ctl.waitLeader(15_000);
      await ctl.waitScans(1);
      assert.is(await ctl.metric(`berth_pool_allocated{pool="${POOL}"}`), BURST);
      assert.ok(ctl.alive, "the controller is still running");

      assert.equal(notEleven, [], "every ADD that failed during the restart failed with code 11 (try again)");
    }),
);

S.run();
