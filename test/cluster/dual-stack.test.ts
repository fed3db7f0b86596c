/**
 * Dual stack in cluster mode: a pod naming an IPv4 and an IPv6 SpiderIPPool
 * gets one address of each (through bridge, in a network namespace); when
 * the IPv6 pool is exhausted the ADD fails and the IPv4 address it took on
 * the way is given back.
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster dual-stack.test.ts
 */
import { randomBytes } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  apply,
  bindPod,
  claimNameOf,
  claimOf,
  claimsOfNamespace,
  claimsOfPool,
  deletePod,
  endpointOf,
  endpointsIn,
  listPods,
  nsAddrs,
  podArgs,
  podUid,
  poolManifest,
  startDeletion,
  waitFor,
  withCluster,
} from "../support/cluster/cluster-env.ts";

const NS_BOTH = "berth-dual-both";
const NS_FULL = "berth-dual-full";
const V4 = "dual-v4";
const V6 = "dual-v6";
const V6_ONE = "dual-v6-one";
const POOLS = [V4, V6, V6_ONE];

const S = suite("cluster: dual stack");

function applyPools(): void {
  apply(poolManifest(V4, { subnet: "10.6.0.0/16", ips: ["10.6.173.1-10.6.173.10"], gateway: "10.6.0.1" }));
  apply(poolManifest(V6, { subnet: "fd00:6:173::/64", ips: ["fd00:6:173::1-fd00:6:173::a"] }));
  apply(poolManifest(V6_ONE, { subnet: "fd00:6:173::/64", ips: ["fd00:6:173::100"] }));
}

function makePod(ns: string, name: string, annotations: Record<string, string>, node: string): string {
  apply(
    JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns, annotations }, spec: { containers: [{ name: "app", image: "nginx" }] } }),
  );
  bindPod(ns, name, node);
  return podUid(ns, name);
}

S("one IPv4 and one IPv6 address through bridge in the netns, claims and endpoint for both; released together", () =>
  withCluster({ tag: "dual", namespaces: [NS_BOTH], pools: POOLS }, async (c) => {
    applyPools();
    const node = c.node("node3");
    // ippools (per interface) takes precedence over ippool, which here names a pool that does not exist.
    const uid = makePod(
      NS_BOTH,
      "dual-0",
      {
        "ipam.spidernet.io/ippools": JSON.stringify([{ interface: "eth0", ipv4: [V4], ipv6: [V6] }]),
        "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: ["dual-no-such-pool"] }),
      },
      "node3",
    );
    const a = c.attach(node, NS_BOTH, "dual-0", uid);

    const ips = a.result.ips as { address: string; gateway?: string }[];
    const v4 = ips.filter((ip) => !ip.address.includes(":"));
    const v6 = ips.filter((ip) => ip.address.includes(":"));
    assert.is(v4.length, 1, `one IPv4 address: ${JSON.stringify(ips)}`);
    assert.is(v6.length, 1, `one IPv6 address: ${JSON.stringify(ips)}`);
    assert.match(v4[0].address, /^10\.6\.173\.([1-9]|10)\/16$/);
    assert.is(v4[0].gateway, "10.6.0.1", "gateway from the IPv4 pool");
    assert.match(v6[0].address, /^fd00:6:173::[1-9a]\/64$/);
    const inNs = nsAddrs(a.netns);
    assert.equal(inNs.map((x) => x.family).sort(), ["inet", "inet6"], `one inet and one global inet6 address on eth0: ${JSON.stringify(inNs)}`);

    const addr4 = v4[0].address.split("/")[0];
    const addr6 = v6[0].address.split("/")[0];
    const c4 = claimOf(addr4);
    const c6 = claimOf(addr6);
    assert.ok(c4 && c6, `claims ${claimNameOf(addr4)} and ${claimNameOf(addr6)} exist`);
    assert.match(claimNameOf(addr6), /^v6-fd00-6-173-0-0-0-0-[1-9a]$/);
    assert.equal([c4!.spec.pool, c4!.spec.ipVersion, c4!.spec.podName, c4!.spec.containerID], [V4, 4, "dual-0", a.containerId]);
    assert.equal([c6!.spec.pool, c6!.spec.ipVersion, c6!.spec.podName, c6!.spec.containerID], [V6, 6, "dual-0", a.containerId]);
    const ep = endpointOf(NS_BOTH, "dual-0");
    assert.equal(
      ep?.spec.ips,
      [
        {
          interface: "eth0",
          network: "berth-cluster-dual",
          podUID: ep?.spec.podUID,
          ipv4: `${addr4}/16`,
          ipv4Pool: V4,
          ipv4Gateway: "10.6.0.1",
          ipv6: `${addr6}/64`,
          ipv6Pool: V6,
        },
      ],
      "endpoint lists both",
    );
    assert.is(ep?.spec.ownerControllerType, "None");
    // One claim in each pool (the pools' status columns are the controller's: controller.test.ts checks an IPv6 pool's).
    assert.equal([claimsOfPool(V4).length, claimsOfPool(V6).length], [1, 1], "one claim in each pool");

    // A plain pod deleted (kubelet order): both addresses released, endpoint gone.
    startDeletion(NS_BOTH, "dual-0");
    c.detach(a);
    deletePod(NS_BOTH, "dual-0");
    assert.is(claimOf(addr4), undefined, "IPv4 claim released");
    assert.is(claimOf(addr6), undefined, "IPv6 claim released");
    assert.is(endpointOf(NS_BOTH, "dual-0"), undefined, "endpoint gone");
    assert.equal([claimsOfPool(V4).length, claimsOfPool(V6).length], [0, 0], "both pools' claims gone");
  }),
);

S("IPv6 pool exhausted: ADD fails with 100 naming it, and the IPv4 address taken on the way is given back", () =>
  withCluster({ tag: "dual", namespaces: [NS_FULL], pools: POOLS, chain: false }, async (c) => {
    applyPools();
    const node = c.node("node1");
    const both = JSON.stringify({ ipv4: [V4], ipv6: [V6_ONE] });

    // The first pod takes the IPv6 pool's only address.
    const uidA = makePod(NS_FULL, "full-a", { "ipam.spidernet.io/ippool": both }, "node1");
    const cidA = randomBytes(32).toString("hex");
    const okA = c.berth("ADD", node, { containerId: cidA, args: podArgs(NS_FULL, "full-a", uidA) });
    assert.is(okA.status, 0, `first ADD: ${okA.stdout} ${okA.stderr}`);
    assert.equal(okA.json.ips.map((ip: { address: string }) => (ip.address.includes(":") ? ip.address : "v4")).sort(), ["fd00:6:173::100/64", "v4"].sort());
    assert.equal([claimsOfPool(V4).length, claimsOfPool(V6_ONE).length], [1, 1], "one claim in each pool after the first pod");

    const uidB = makePod(NS_FULL, "full-b", { "ipam.spidernet.io/ippool": both }, "node1");
    const before = JSON.stringify({
      claims: claimsOfNamespace(NS_FULL)
        .map((cl) => cl.metadata.name)
        .sort(),
      eps: endpointsIn(NS_FULL).map((e) => e.metadata.name),
      v4: claimsOfPool(V4).length,
      v6: claimsOfPool(V6_ONE).length,
    });
    const cidB = randomBytes(32).toString("hex");
    const o = c.berth("ADD", node, { containerId: cidB, args: podArgs(NS_FULL, "full-b", uidB) });
    assert.is.not(o.status, 0, `second ADD must fail: ${o.stdout}`);
    assert.is(o.json?.code, 100, `exhausted: ${JSON.stringify(o.json)}`);
    assert.ok(String(o.json.msg).includes(V6_ONE), `names the IPv6 pool: ${o.json.msg}`);
    assert.match(o.json.msg, /IPv6/);

    assert.equal(
      claimsOfNamespace(NS_FULL).filter((cl) => cl.spec.podName === "full-b"),
      [],
      "no claim (IPv4 or IPv6) held by the failed pod",
    );
    assert.is(endpointOf(NS_FULL, "full-b"), undefined, "no endpoint for the failed pod");
    assert.is(claimsOfPool(V4).length, 1, "only the first pod's IPv4 claim");
    await waitFor(
      `counts unchanged (${before})`,
      () =>
        JSON.stringify({
          claims: claimsOfNamespace(NS_FULL)
            .map((cl) => cl.metadata.name)
            .sort(),
          eps: endpointsIn(NS_FULL).map((e) => e.metadata.name),
          v4: claimsOfPool(V4).length,
          v6: claimsOfPool(V6_ONE).length,
        }) === before,
      2000,
      100,
    );

    // The kubelet's DEL after the failed ADD, then the first pod's: everything free.
    assert.is(c.berth("DEL", node, { containerId: cidB, args: podArgs(NS_FULL, "full-b", uidB) }).status, 0);
    deletePod(NS_FULL, "full-a");
    await waitFor("full-a gone", () => !listPods(NS_FULL).some((p) => p.metadata.name === "full-a"), 10_000);
    assert.is(c.berth("DEL", node, { containerId: cidA, args: podArgs(NS_FULL, "full-a", uidA) }).status, 0);
    assert.equal(claimsOfNamespace(NS_FULL), [], "no claims left");
    assert.equal([claimsOfPool(V4).length, claimsOfPool(V6_ONE).length], [0, 0], "both pools' claims gone");
  }),
);

S.run();
