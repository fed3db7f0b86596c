/**
 * Which SpiderIPPool serves a pod, in cluster mode (dist/berth run directly):
 * pod annotation ipam.spidernet.io/ippools (per interface), then
 * ipam.spidernet.io/ippool, then the namespace's default-ipv4-ippool
 * annotation, then ipam.default_ipv4_ippool, then pools with spec.default;
 * and pools whose podAffinity / namespaceName / multusName exclude the pod
 * are skipped (101 when none is left).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster pool-choice.test.ts
 */
import { randomBytes } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  apply,
  bindPod,
  type ClusterScope,
  claimOf,
  listPools,
  patchPool,
  podArgs,
  podUid,
  poolManifest,
  type SimNode,
  withCluster,
} from "../support/cluster/cluster-env.ts";

const NS_ANN = "berth-pc-ann";
const NS_PLAIN = "berth-pc-plain";
const NS_RESTRICT = "berth-pc-restrict";
const POOL = {
  ippools: "pc-ippools",
  ippool: "pc-ippool",
  ns: "pc-ns",
  conf: "pc-conf",
  dflt: "pc-default",
  aff: "pc-affinity",
  nsName: "pc-nsname",
  multus: "pc-multus",
} as const;
const RANGE: Record<string, number> = {
  [POOL.ippools]: 1,
  [POOL.ippool]: 11,
  [POOL.ns]: 21,
  [POOL.conf]: 31,
  [POOL.dflt]: 41,
  [POOL.aff]: 51,
  [POOL.nsName]: 61,
  [POOL.multus]: 71,
};

const S = suite("cluster: pool choice");

let n = 0;

function makePod(ns: string, annotations: Record<string, string> = {}, labels: Record<string, string> = {}): { ns: string; name: string; uid: string } {
  const name = `pc-${++n}`;
  apply(
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns, annotations, labels },
      spec: { containers: [{ name: "app", image: "nginx" }] },
    }),
  );
  bindPod(ns, name, "node1");
  return { ns, name, uid: podUid(ns, name) };
}

/** ADD (must succeed), returns the pool the claim names after checking the address is in its range; then DEL frees it. */
function poolChosen(
  c: ClusterScope,
  node: SimNode,
  pod: { ns: string; name: string; uid: string },
  opts: { ipamExtra?: Record<string, unknown>; network?: string; ifname?: string } = {},
): string {
  const containerId = randomBytes(32).toString("hex");
  const stdin = { ...c.berthConf(node, opts.ipamExtra), ...(opts.network ? { name: opts.network } : {}) };
  const add = c.berth("ADD", node, { containerId, args: podArgs(pod.ns, pod.name, pod.uid), stdin, ifname: opts.ifname ?? "eth0" });
  assert.is(add.status, 0, `ADD of ${pod.ns}/${pod.name}: ${add.stdout} ${add.stderr}`);
  const address = add.json.ips[0].address.split("/")[0];
  const pool = claimOf(address)?.spec.pool;
  assert.ok(pool, `claim for ${address}`);
  const first = RANGE[pool!];
  assert.ok(first !== undefined, `${address} came from ${pool}, not one of this file's pools`);
  const last = Number(address.split(".")[3]);
  assert.ok(address.startsWith("10.6.174.") && last >= first && last < first + 5, `${address} is in ${pool}'s range`);
  const del = c.berth("DEL", node, { containerId, args: podArgs(pod.ns, pod.name, pod.uid), stdin, ifname: opts.ifname ?? "eth0" });
  assert.is(del.status, 0, `DEL: ${del.stdout}`);
  return pool!;
}

function refused(
  c: ClusterScope,
  node: SimNode,
  pod: { ns: string; name: string; uid: string },
  mentions: (string | RegExp)[],
  opts: { network?: string } = {},
): void {
  const stdin = { ...c.berthConf(node), ...(opts.network ? { name: opts.network } : {}) };
  const o = c.berth("ADD", node, { containerId: randomBytes(32).toString("hex"), args: podArgs(pod.ns, pod.name, pod.uid), stdin });
  assert.is(o.json?.code, 101, `no candidate pool for ${pod.name}: ${o.stdout}`);
  for (const m of mentions) {
    if (typeof m === "string") assert.ok(o.json.msg.includes(m), `names ${m}: ${o.json.msg}`);
    else assert.match(o.json.msg, m);
  }
}

const ippool = (pool: string) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) });

S("precedence: ippools (this interface) > ippool > namespace default > ipam default_ipv4_ippool > spec.default pools", () =>
  withCluster(
    {
      tag: "pc",
      namespaces: [NS_ANN, NS_PLAIN],
      pools: Object.values(POOL),
      chain: false,
      nsAnnotations: { [NS_ANN]: { "ipam.spidernet.io/default-ipv4-ippool": JSON.stringify([POOL.ns]) } },
    },
    async (c) => {
      for (const [pool, first] of Object.entries(RANGE)) {
        const spec: Record<string, unknown> = { subnet: "10.6.0.0/16", ips: [`10.6.174.${first}-10.6.174.${first + 4}`] };
        if (pool === POOL.dflt) spec.default = true;
        if (pool === POOL.aff) spec.podAffinity = { matchLabels: { app: "wanted" } };
        if (pool === POOL.nsName) spec.namespaceName = ["some-other-namespace"];
        if (pool === POOL.multus) spec.multusName = ["kube-system/other-net"];
        apply(poolManifest(pool, spec));
      }
      const node = c.node("node1");
      const conf = { ipamExtra: { default_ipv4_ippool: [POOL.conf] } };

      const both = makePod(NS_ANN, {
        "ipam.spidernet.io/ippools": JSON.stringify([{ interface: "eth0", ipv4: [POOL.ippools] }]),
        ...ippool(POOL.ippool),
      });
      assert.is(poolChosen(c, node, both, conf), POOL.ippools, "ippools entry for eth0 wins");

      const otherIface = makePod(NS_ANN, {
        "ipam.spidernet.io/ippools": JSON.stringify([{ interface: "net1", ipv4: [POOL.ippools] }]),
        ...ippool(POOL.ippool),
      });
      assert.is(poolChosen(c, node, otherIface, conf), POOL.ippool, "ippools names only net1: ippool serves eth0");

      const nsDefault = makePod(NS_ANN);
      assert.is(poolChosen(c, node, nsDefault, conf), POOL.ns, "namespace annotation beats the ipam block's default");

      const confDefault = makePod(NS_PLAIN);
      assert.is(poolChosen(c, node, confDefault, conf), POOL.conf, "ipam default_ipv4_ippool without other choices");

      const specDefault = makePod(NS_PLAIN);
      const defaults = (listPools() as { metadata: { name: string }; spec: { default?: boolean } }[]).filter((p) => p.spec.default).map((p) => p.metadata.name);
      assert.is(
        poolChosen(c, node, specDefault),
        POOL.dflt,
        `a pool with spec.default: true serves when nothing names one (default pools now: ${defaults.join(", ")})`,
      );
    },
  ),
);

S("restrictions: podAffinity, namespaceName and multusName exclude pods they do not match (101), and admit those they do", () =>
  withCluster({ tag: "pc", namespaces: [NS_RESTRICT], pools: Object.values(POOL), chain: false }, async (c) => {
    apply(poolManifest(POOL.aff, { subnet: "10.6.0.0/16", ips: ["10.6.174.51-10.6.174.55"], podAffinity: { matchLabels: { app: "wanted" } } }));
    apply(poolManifest(POOL.nsName, { subnet: "10.6.0.0/16", ips: ["10.6.174.61-10.6.174.65"], namespaceName: ["some-other-namespace"] }));
    apply(poolManifest(POOL.multus, { subnet: "10.6.0.0/16", ips: ["10.6.174.71-10.6.174.75"], multusName: ["kube-system/other-net"] }));
    // The pods are scheduled to node1 (makePod): the ADD runs there.
    const node = c.node("node1");

    refused(c, node, makePod(NS_RESTRICT, ippool(POOL.aff), { app: "unwanted" }), [POOL.aff, /podAffinity/]);
    assert.is(poolChosen(c, node, makePod(NS_RESTRICT, ippool(POOL.aff), { app: "wanted" })), POOL.aff, "podAffinity matches");

    refused(c, node, makePod(NS_RESTRICT, ippool(POOL.nsName)), [POOL.nsName, NS_RESTRICT, "some-other-namespace"]);
    patchPool(POOL.nsName, { spec: { namespaceName: [NS_RESTRICT] } });
    assert.is(poolChosen(c, node, makePod(NS_RESTRICT, ippool(POOL.nsName))), POOL.nsName, "namespaceName lists the namespace");

    // multusName names a NetworkAttachmentDefinition: the pod's Multus annotation says which one this ADD serves.
    refused(c, node, makePod(NS_RESTRICT, ippool(POOL.multus)), [POOL.multus, "kube-system/other-net", "k8s.v1.cni.cncf.io/networks"]);
    const onOtherNet = { ...ippool(POOL.multus), "k8s.v1.cni.cncf.io/networks": "kube-system/other-net" };
    assert.is(poolChosen(c, node, makePod(NS_RESTRICT, onOtherNet), { network: "other-net", ifname: "net1" }), POOL.multus, "multusName names the pod's NAD");
  }),
);

S.run();
