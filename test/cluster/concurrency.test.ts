/**
 * Many ADDs at once from several nodes against one pool, in cluster mode:
 * the API server (BerthIPClaim creates) is the only arbiter, so each address
 * goes to exactly one pod, the pool's count is exact, and the losers leave
 * nothing behind. dist/berth is run directly (no interface needed).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster concurrency.test.ts
 */
import { randomBytes } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cli } from "../support/berth.ts";
import {
  apply,
  bindPodAsync,
  claimNameOf,
  claimsOfPool,
  deletePods,
  endpointsIn,
  inBatches,
  listPods,
  podArgs,
  poolManifest,
  type SimNode,
  waitFor,
  withCluster,
} from "../support/cluster/cluster-env.ts";

const NS = "berth-conc";
const POOL = "conc-pool";
const NODES = ["node1", "node2", "node3"];
const PER_NODE = 20;
const POOL_SIZE = 50;

const S = suite("cluster: concurrency");

interface Attempt {
  pod: string;
  uid: string;
  node: SimNode;
  containerId: string;
}

function leasesOn(node: SimNode): { address: string; container_id: string; state: string; pod_name: string | null }[] {
  const r = cli(["inspect", "leases", "--db", `${node.dataDir}/berth.db`, "-o", "json"]);
  assert.is(r.status, 0, `berth inspect leases on ${node.name}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

S(
  `${NODES.length} nodes × ${PER_NODE} ADDs at once against a ${POOL_SIZE}-address pool: ${POOL_SIZE} distinct winners, the rest fail with 100 and leave nothing; DEL of all frees everything`,
  () =>
    withCluster({ tag: "conc", namespaces: [NS], pools: [POOL], chain: false }, async (c) => {
      apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: [`10.6.171.1-10.6.171.${POOL_SIZE}`] }));

      // 60 plain pods naming the pool, each bound to its node.
      const names = NODES.flatMap((n) => Array.from({ length: PER_NODE }, (_, i) => ({ pod: `conc-${n}-${i}`, node: n })));
      apply(
        JSON.stringify({
          apiVersion: "v1",
          kind: "List",
          items: names.map(({ pod }) => ({
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: pod, namespace: NS, annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [POOL] }) } },
            spec: { containers: [{ name: "app", image: "nginx" }] },
          })),
        }),
      );
      await inBatches(names, 10, ({ pod, node }) => bindPodAsync(NS, pod, node));
      const uids = new Map(listPods(NS).map((p) => [p.metadata.name, { uid: p.metadata.uid, nodeName: p.spec.nodeName }]));
      for (const { pod, node } of names) assert.is(uids.get(pod)?.nodeName, node, `${pod} bound to ${node}`);

      const attempts: Attempt[] = names.map(({ pod, node }) => ({
        pod,
        uid: uids.get(pod)!.uid,
        node: c.node(node),
        containerId: randomBytes(32).toString("hex"),
      }));
      const started = Date.now();
      const outcomes = await Promise.all(attempts.map((a) => c.berthAsync("ADD", a.node, { containerId: a.containerId, args: podArgs(NS, a.pod, a.uid) })));
      const addMs = Date.now() - started;

      const winners = new Map<string, { attempt: Attempt; address: string }>();
      const failures: { attempt: Attempt; json: any; stderr: string }[] = [];
      outcomes.forEach((o, i) => {
        if (o.status === 0) winners.set(attempts[i].pod, { attempt: attempts[i], address: o.json.ips[0].address.split("/")[0] });
        else failures.push({ attempt: attempts[i], json: o.json, stderr: o.stderr });
      });
      // Claims held by a pod whose ADD failed: left behind by a loser.
      const claimsAfterAdd = claimsOfPool(POOL);
      const orphans = claimsAfterAdd
        .filter((cl) => !winners.has(cl.spec.podName))
        .map((cl) => {
          const f = failures.find((x) => x.attempt.pod === cl.spec.podName);
          return `${cl.metadata.name} held by ${cl.spec.podName} whose ADD failed with ${f?.json?.code}: ${f?.json?.msg}`;
        });
      const codes: Record<string, number> = {};
      for (const f of failures) codes[String(f.json?.code)] = (codes[String(f.json?.code)] ?? 0) + 1;
      const summary =
        `${winners.size} succeeded, ${failures.length} failed (codes ${JSON.stringify(codes)}) in ${addMs} ms; ` +
        `${claimsAfterAdd.length} claims, ${orphans.length} held by pods whose ADD failed${orphans.length ? `:\n  ${orphans.slice(0, 5).join("\n  ")}` : ""}\n` +
        `failures: ${JSON.stringify(failures.slice(0, 5).map((f) => f.json))}`;
      assert.is(winners.size, POOL_SIZE, `exactly ${POOL_SIZE} ADDs succeed: ${summary}`);
      assert.is(failures.length, NODES.length * PER_NODE - POOL_SIZE, summary);
      const addresses = [...winners.values()].map((w) => w.address);
      assert.is(new Set(addresses).size, POOL_SIZE, "the winners' addresses are distinct");
      for (const a of addresses) assert.match(a, /^10\.6\.171\.([1-9]|[1-4][0-9]|50)$/, `${a} is in the pool`);
      for (const f of failures) {
        assert.is(f.json?.code, 100, `a loser fails with 100 (exhausted): ${JSON.stringify(f.json)} ${f.stderr}`);
        assert.match(f.json.msg, POOL, `the message names the pool: ${f.json.msg}`);
        assert.match(f.json.msg, /exhausted/);
      }

      assert.equal(orphans, [], `no claim is left behind by a failed ADD: ${summary}`);

      // Exactly one claim per winner, held by the pod (and sandbox, node) that got that address.
      const claims = claimsOfPool(POOL);
      assert.is(claims.length, POOL_SIZE, `exactly ${POOL_SIZE} BerthIPClaims`);
      for (const cl of claims) {
        const w = winners.get(cl.spec.podName);
        assert.ok(w, `claim ${cl.metadata.name} is held by ${cl.spec.podName}, which is not a winner`);
        assert.equal(
          {
            name: cl.metadata.name,
            address: cl.spec.address,
            ns: cl.spec.podNamespace,
            uid: cl.spec.podUID,
            container: cl.spec.containerID,
            node: cl.spec.node,
          },
          { name: claimNameOf(w!.address), address: w!.address, ns: NS, uid: w!.attempt.uid, container: w!.attempt.containerId, node: w!.attempt.node.name },
        );
      }
      // No pool count here: the plugin writes none (the controller keeps them; controller.test.ts checks a burst's).

      // Endpoints only for the winners, each with its address; nothing for the losers.
      const eps = endpointsIn(NS);
      assert.equal(eps.map((e) => e.metadata.name).sort(), [...winners.keys()].sort(), "endpoints exist exactly for the winners");
      for (const e of eps) {
        const w = winners.get(e.metadata.name)!;
        assert.equal(
          { uid: e.spec.podUID, node: e.spec.node, ips: e.spec.ips },
          {
            uid: w.attempt.uid,
            node: w.attempt.node.name,
            ips: [{ interface: "eth0", network: "berth-cluster-conc", podUID: w.attempt.uid, ipv4: `${w.address}/16`, ipv4Pool: POOL }],
          },
          `endpoint ${e.metadata.name}`,
        );
      }
      // Each node's database: an active lease per winner on that node, nothing for the losers.
      for (const node of NODES.map((n) => c.node(n))) {
        const expected = [...winners.values()]
          .filter((w) => w.attempt.node === node)
          .map((w) => `${w.attempt.containerId}=${w.address}:active`)
          .sort();
        assert.equal(
          leasesOn(node)
            .map((l) => `${l.container_id}=${l.address}:${l.state}`)
            .sort(),
          expected,
          `leases on ${node.name}`,
        );
      }

      // The pods go; the kubelets' DELs (losers' too, as a kubelet does after a failed ADD) all succeed and free everything.
      deletePods(NS, undefined, { force: true });
      await waitFor("the pods to be gone", () => listPods(NS).length === 0, 20_000);
      const dels = await Promise.all(attempts.map((a) => c.berthAsync("DEL", a.node, { containerId: a.containerId, args: podArgs(NS, a.pod, a.uid) })));
      for (const [i, d] of dels.entries()) assert.is(d.status, 0, `DEL of ${attempts[i].pod}: ${d.stdout} ${d.stderr}`);
      assert.equal(claimsOfPool(POOL), [], "no claims left");
      assert.equal(endpointsIn(NS), [], "no endpoints left");
      for (const node of NODES.map((n) => c.node(n))) assert.equal(leasesOn(node), [], `no leases left on ${node.name}`);
    }),
);

S.run();
