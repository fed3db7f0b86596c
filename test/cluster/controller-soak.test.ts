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
 * dist/berth is called directly (no interface); the test's own API calls go
 * through one keep-alive HTTPS client as admin.
 *
 * Address range: 10.6.176.1-250 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster controller-soak.test.ts
 */
import { randomBytes } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type ClusterScope, type SimNode, apply, inBatches, podArgs, poolManifest, waitFor } from "./cluster-env.ts";
import { CLAIMS_PATH, adminApi, adminMust, endpointsPath, podsPath, sleep, startController, waitForAsync, withControllers } from "./controller-env.ts";

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

interface Running {
  name: string;
  uid: string;
  node: SimNode;
  containerId: string;
  address: string;
  set?: string;
}

interface ApiPod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
}

interface ApiEndpoint {
  metadata: { name: string };
  spec: { podUID: string; ips: { ipv4?: string }[] };
}

interface ApiClaim {
  metadata: { name: string };
  spec: { address: string; pool: string; podNamespace: string; podName: string; podUID: string; containerID: string; statefulSet?: string };
}

const rand = (n: number) => Math.floor(Math.random() * n);
const pick = <T>(xs: T[], n: number): T[] => {
  const copy = [...xs];
  const out: T[] = [];
  while (out.length < n && copy.length) out.push(copy.splice(rand(copy.length), 1)[0]);
  return out;
};

S(
  `soak: ${CYCLES} create/delete cycles over StatefulSets and plain pods on 3 nodes, with and without DEL, the controller running: never an address on two pods, nothing left over, counts right`,
  () =>
    withControllers({ tag: "ctlsoak", namespaces: [NS], pools: [POOL] }, async (c: ClusterScope) => {
      const t0 = Date.now();
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.176.1-10.6.176.250"] }));
      const nodes = ["node1", "node2", "node3"].map((n) => c.node(n));
      const annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [POOL] }) };
      const ctl = await startController({ identity: "ctl-soak", resyncSeconds: 3, addTimeoutSeconds: 10 });
      await ctl.waitLeader();

      const live = new Map<string, Running>();
      /** A StatefulSet member's expected address when it comes back (its binding), while no scale-down came between. */
      const binding = new Map<string, string>();
      const replicas = new Map(SETS.map((s) => [s, REPLICAS]));
      const stats = { cycles: 0, withDel: 0, withoutDel: 0, adds: 0, addRetries: 0, sticky: 0, scaleDowns: 0, checks: 0 };
      const failures: string[] = [];

      /** Containers being ADDed per node: the runtime knows its sandboxes, so a GC counts them as valid. */
      const inflight = new Map(nodes.map((n) => [n.name, new Set<string>()]));
      /** A node's GC in progress: the runtime starts no ADD on that node meanwhile. */
      const gcRunning = new Map<string, Promise<void>>();
      let staleLeaseConflicts = 0;

      /**
       * The runtime's CNI GC (CNI 1.1; containerd runs it periodically) on `node`, with every sandbox it knows
       * there as valid: drops what pods removed with no DEL left in the node database.
       */
      const gc = async (node: SimNode) => {
        while (gcRunning.has(node.name)) await gcRunning.get(node.name);
        let done!: () => void;
        gcRunning.set(node.name, new Promise<void>((r) => (done = r)));
        try {
          const valid = [...[...live.values()].filter((r) => r.node === node).map((r) => r.containerId), ...inflight.get(node.name)!].map((containerID) => ({
            containerID,
            ifname: "eth0",
          }));
          const o = await c.berthAsync("GC", node, {
            stdin: { cniVersion: "1.1.0", name: c.network, type: "berth", ipam: c.ipam(node), "cni.dev/valid-attachments": valid },
          });
          assert.is(o.status, 0, `GC on ${node.name}: ${o.stdout} ${o.stderr}`);
        } finally {
          gcRunning.delete(node.name);
          done();
        }
      };

      /**
       * The kubelet's ADD: on failure, DEL of that sandbox and a new one (up to 3 times). A 102 naming a
       * container this node still leases the address to (a pod removed here with no DEL: berth's reclaim
       * refuses a member's bound address while another pod's stale local lease names it, a known product bug)
       * is counted and the runtime's GC is run on the node before the retry; any other failure is recorded
       * and fails the test.
       */
      const add = async (name: string, uid: string, node: SimNode, set?: string): Promise<Running> => {
        let last = "";
        for (let attempt = 1; attempt <= 3; attempt++) {
          while (gcRunning.has(node.name)) await gcRunning.get(node.name);
          const containerId = randomBytes(32).toString("hex");
          inflight.get(node.name)!.add(containerId);
          const o = await c.berthAsync("ADD", node, { containerId, args: podArgs(NS, name, uid), ipamExtra: { timeoutSeconds: 10 } });
          inflight.get(node.name)!.delete(containerId);
          stats.adds++;
          if (o.status === 0) return { name, uid, node, containerId, address: o.json.ips[0].address.split("/")[0], set };
          last = `${o.stdout.trim()} ${o.stderr.trim()}`;
          stats.addRetries++;
          // The kubelet: DEL of the failed sandbox, then a new one.
          const d = await c.berthAsync("DEL", node, { containerId, args: podArgs(NS, name, uid) });
          assert.is(d.status, 0, `DEL after the failed ADD of ${name}: ${d.stdout}`);
          if (o.json?.code === 102 && /is leased on this node to container/.test(o.json.msg)) {
            staleLeaseConflicts++;
            console.error(`[ctlsoak] stale local lease on ${node.name}: ${o.json.msg}; running the runtime's GC there`);
            await gc(node);
          } else {
            failures.push(`ADD ${name} on ${node.name} attempt ${attempt}: ${last}`);
          }
          await sleep(200);
        }
        throw new Error(`ADD of ${name} on ${node.name} failed 3 times: ${last}\n${c.logTail(node, 10)}`);
      };

      const listPods = async () => (await adminMust<{ items: ApiPod[] }>("GET", podsPath(NS))).items;
      const deleteNow = (name: string) =>
        adminMust("DELETE", `${podsPath(NS)}/${name}`, { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 }, [404]);

      /** Removes a running pod: with the kubelet's DEL (terminating, DEL, final delete) or without (just gone). */
      const remove = async (r: Running, withDel: boolean) => {
        live.delete(r.name);
        if (withDel) {
          await adminMust("DELETE", `${podsPath(NS)}/${r.name}`, undefined, [404]); // deletionTimestamp (bound: 30 s grace)
          const d = await c.berthAsync("DEL", r.node, { containerId: r.containerId, args: podArgs(NS, r.name, r.uid) });
          assert.is(d.status, 0, `DEL of ${r.name} on ${r.node.name}: ${d.stdout} ${d.stderr}`);
          stats.withDel++;
        } else {
          stats.withoutDel++;
        }
        await deleteNow(r.name);
        stats.cycles++;
      };

      const createPlain = async (name: string) => {
        const node = nodes[rand(3)];
        const created = await adminMust("POST", podsPath(NS), {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, namespace: NS, annotations },
          spec: { nodeName: node.name, containers: [{ name: "app", image: "nginx" }] },
        });
        live.set(name, await add(name, created.metadata.uid, node));
      };

      /** Scheduler + kubelet for a member: waits for a new incarnation, binds it to a random node, ADD. */
      const startMember = async (set: string, name: string, notUid?: string) => {
        const pod = await waitForAsync(
          `StatefulSet member ${name}${notUid ? ` (UID other than ${notUid})` : ""}`,
          async () => {
            const r = await adminApi<ApiPod>("GET", `${podsPath(NS)}/${name}`);
            return r.status === 200 && !r.body.metadata.deletionTimestamp && r.body.metadata.uid !== notUid ? r.body : undefined;
          },
          20_000,
          100,
        );
        const node = nodes[rand(3)];
        await adminMust("POST", `${podsPath(NS)}/${name}/binding`, {
          apiVersion: "v1",
          kind: "Binding",
          metadata: { name, namespace: NS },
          target: { apiVersion: "v1", kind: "Node", name: node.name },
        });
        const r = await add(name, pod.metadata.uid, node, set);
        const want = binding.get(name);
        if (want !== undefined) {
          assert.is(r.address, want, `${name} came back (UID ${r.uid}, ${node.name}) with its address`);
          stats.sticky++;
        }
        binding.set(name, r.address);
        live.set(name, r);
      };

      const scale = (set: string, n: number) =>
        adminMust("PATCH", `/apis/apps/v1/namespaces/${NS}/statefulsets/${set}`, { spec: { replicas: n } }, [], "application/merge-patch+json").then(() =>
          replicas.set(set, n),
        );

      /** The invariants that must hold at any quiet moment. */
      const check = async (when: string) => {
        stats.checks++;
        // 1. By the ADD results: the running pods' addresses are distinct.
        const byAddress = new Map<string, string[]>();
        for (const r of live.values()) byAddress.set(r.address, [...(byAddress.get(r.address) ?? []), r.name]);
        const dupes = [...byAddress].filter(([, names]) => names.length > 1);
        assert.equal(dupes, [], `${when}: an address handed to two running pods`);
        // 2. By the API: no address in two living pods' endpoints; every running pod's address claimed by it.
        const [pods, eps, claims] = await Promise.all([
          listPods(),
          adminMust<{ items: ApiEndpoint[] }>("GET", endpointsPath(NS)).then((l) => l.items),
          adminMust<{ items: ApiClaim[] }>("GET", CLAIMS_PATH).then((l) => l.items.filter((cl) => cl.spec.pool === POOL)),
        ]);
        const living = new Set(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name));
        const epHolders = new Map<string, string[]>();
        for (const e of eps) {
          if (!living.has(e.metadata.name)) continue;
          for (const ip of e.spec.ips) if (ip.ipv4) epHolders.set(ip.ipv4.split("/")[0], [...(epHolders.get(ip.ipv4.split("/")[0]) ?? []), e.metadata.name]);
        }
        assert.equal(
          [...epHolders].filter(([, names]) => names.length > 1),
          [],
          `${when}: an address listed by two living pods' endpoints`,
        );
        const claimOf = new Map(claims.map((cl) => [cl.spec.address, cl]));
        for (const r of live.values()) {
          const cl = claimOf.get(r.address);
          assert.ok(
            cl && cl.spec.podName === r.name && cl.spec.podUID === r.uid,
            `${when}: running pod ${r.name} (UID ${r.uid}) holds ${r.address}, but its claim is ${cl ? `${cl.spec.podName}/${cl.spec.podUID}` : "gone"}\n${ctl.logTail(10)}`,
          );
          assert.ok(epHolders.get(r.address)?.includes(r.name), `${when}: running pod ${r.name}'s endpoint lists ${r.address}`);
        }
      };

      // Start: the StatefulSets' members and the first plain pods.
      for (const set of SETS) {
        apply(
          JSON.stringify({
            apiVersion: "apps/v1",
            kind: "StatefulSet",
            metadata: { name: set, namespace: NS },
            spec: {
              serviceName: set,
              replicas: REPLICAS,
              podManagementPolicy: "Parallel",
              selector: { matchLabels: { app: set } },
              template: { metadata: { labels: { app: set }, annotations }, spec: { containers: [{ name: "app", image: "nginx" }] } },
            },
          }),
        );
      }
      await inBatches(
        SETS.flatMap((s) => Array.from({ length: REPLICAS }, (_, i) => [s, `${s}-${i}`])),
        PARALLEL,
        ([s, n]) => startMember(s, n),
      );
      let plainCounter = 0;
      const freeName = () => {
        for (;;) {
          const n = `p-${plainCounter++ % PLAIN_NAMES}`;
          if (!live.has(n)) return n;
        }
      };
      await inBatches(Array.from({ length: PLAIN_LIVE }, freeName), PARALLEL, createPlain);
      await check("start");

      let batch = 0;
      while (stats.cycles < CYCLES) {
        batch++;
        const where = `batch ${batch} (${stats.cycles} cycles)`;
        // Plain pods: some removed (half with DEL), as many new ones (names reused).
        const plains = [...live.values()].filter((r) => !r.set);
        const gone = pick(plains, Math.min(PLAIN_PER_BATCH, CYCLES - stats.cycles));
        // Members: some deleted and recreated by the StatefulSet controller (half with DEL).
        const members = [...live.values()].filter((r) => r.set && Number(r.name.slice(r.set.length + 1)) < replicas.get(r.set)!);
        const recycle = pick(members, Math.min(MEMBERS_PER_BATCH, Math.max(0, CYCLES - stats.cycles - gone.length)));
        await inBatches([...gone, ...recycle], PARALLEL, (r) => remove(r, Math.random() < 0.5));
        const names = gone.map(() => freeName());
        await Promise.all([inBatches(names, PARALLEL, createPlain), inBatches(recycle, PARALLEL, (r) => startMember(r.set!, r.name, r.uid))]);

        // Every 5th batch a set is scaled down by two (the StatefulSet controller deletes the members; one gets its DEL,
        // one does not); the next batch scales it back up: new members, new addresses.
        const set = SETS[Math.floor(batch / 5) % 2];
        if (batch % 5 === 2 && stats.cycles < CYCLES) {
          const n = replicas.get(set)!;
          await scale(set, n - 2);
          const victims = [`${set}-${n - 1}`, `${set}-${n - 2}`].map((name) => live.get(name)!).filter(Boolean);
          await Promise.all(
            victims.map(async (r, i) => {
              await waitForAsync(
                `${r.name} to be terminating after the scale-down`,
                async () => {
                  const p = await adminApi<ApiPod>("GET", `${podsPath(NS)}/${r.name}`);
                  return p.status === 404 || !!p.body.metadata.deletionTimestamp;
                },
                20_000,
                100,
              );
              live.delete(r.name);
              binding.delete(r.name);
              if (i === 0) {
                const d = await c.berthAsync("DEL", r.node, { containerId: r.containerId, args: podArgs(NS, r.name, r.uid) });
                assert.is(d.status, 0, `DEL of scaled-down ${r.name}: ${d.stdout}`);
                stats.withDel++;
              } else stats.withoutDel++;
              await deleteNow(r.name);
              stats.cycles++;
            }),
          );
          stats.scaleDowns++;
        } else if (batch % 5 === 3) {
          const n = replicas.get(set)!;
          if (n < REPLICAS) {
            await scale(set, REPLICAS);
            await inBatches(
              Array.from({ length: REPLICAS - n }, (_, i) => `${set}-${n + i}`),
              PARALLEL,
              (name) => startMember(set, name),
            );
          }
        }
        await check(where);
      }
      const soakMs = Date.now() - t0;

      // The end: let the controller finish what no DEL released, then every claim must be accounted for.
      const pending = async () => {
        const [pods, claims, eps, sets, pool] = await Promise.all([
          listPods(),
          adminMust<{ items: ApiClaim[] }>("GET", CLAIMS_PATH).then((l) => l.items.filter((cl) => cl.spec.pool === POOL)),
          adminMust<{ items: ApiEndpoint[] }>("GET", endpointsPath(NS)).then((l) => l.items),
          adminMust<{ items: { metadata: { name: string }; spec: { replicas: number } }[] }>("GET", `/apis/apps/v1/namespaces/${NS}/statefulsets`).then(
            (l) => l.items,
          ),
          adminMust("GET", `/apis/spiderpool.spidernet.io/v2beta1/spiderippools/${POOL}`),
        ]);
        const podByName = new Map(pods.map((p) => [p.metadata.name, p]));
        const epByName = new Map(eps.map((e) => [e.metadata.name, e]));
        const setReplicas = new Map(sets.map((s) => [s.metadata.name, s.spec.replicas]));
        const unexplained = claims.filter((cl) => {
          const { podName, podUID, statefulSet, address } = cl.spec;
          const listed = epByName.get(podName)?.spec.ips.some((i) => i.ipv4?.split("/")[0] === address);
          if (!listed) return true;
          const pod = podByName.get(podName);
          if (statefulSet) {
            const ordinal = Number(podName.slice(statefulSet.length + 1));
            return !(setReplicas.has(statefulSet) && ordinal < setReplicas.get(statefulSet)!);
          }
          return !(pod && pod.metadata.uid === podUID && !pod.metadata.deletionTimestamp);
        });
        return { claims, unexplained, status: pool.status ?? {} };
      };
      const end = await waitForAsync(
        "every claim to belong to a living pod or a StatefulSet binding in range, and the pool count to match",
        async () => {
          const p = await pending();
          return p.unexplained.length === 0 && p.status.allocatedIPCount === p.claims.length ? p : undefined;
        },
        30_000,
        500,
      ).catch(async (err) => {
        const p = await pending();
        throw new Error(
          `${(err as Error).message}\nunexplained claims: ${JSON.stringify(p.unexplained.map((cl) => cl.spec))}\npool status ${JSON.stringify(p.status)} for ${p.claims.length} claims\n${ctl.logTail(30)}`,
        );
      });
      await check("end");
      const runningClaims = [...live.values()].length;
      assert.ok(end.claims.length >= runningClaims, "at least one claim per running pod");
      assert.is(await ctl.metric(`berth_pool_allocated{pool="${POOL}"}`), end.claims.length, "the controller's metric agrees");
      await waitFor("the controller to be leading still", () => ctl.alive, 1000);

      const rel = ctl.releases((r) => r.pod.startsWith(`${NS}/`));
      const reasons: Record<string, number> = {};
      for (const r of rel) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
      console.error(
        `[ctlsoak] ${stats.cycles} cycles in ${batch} batches, ${(soakMs / 1000).toFixed(1)} s: ${stats.withDel} with DEL, ${stats.withoutDel} without; ` +
          `${stats.adds} ADDs (${stats.addRetries} retried), ${stats.sticky} members back on their address, ${stats.scaleDowns} scale-downs, ${stats.checks} checks; ` +
          `controller released ${rel.length} (${JSON.stringify(reasons)}); ${end.claims.length} claims at the end for ${runningClaims} running pods`,
      );
      if (staleLeaseConflicts)
        console.error(`[ctlsoak] ${staleLeaseConflicts} ADD(s) refused with 102 by a stale local lease (cleared by the runtime's GC, then retried)`);
      if (failures.length) console.error(`[ctlsoak] other ADD failures (retried by the kubelet):\n  ${failures.slice(0, 10).join("\n  ")}`);
      assert.ok(stats.cycles >= CYCLES);
      assert.ok(stats.withoutDel > 50 && stats.withDel > 50, "both kinds of deletion happened");
      assert.ok(rel.length > 0, "the controller released what no DEL did");
      assert.equal(failures, [], "no ADD failed for any other reason");
    }),
);

S.run();
