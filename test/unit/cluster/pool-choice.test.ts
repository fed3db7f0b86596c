import { test } from "uvu";
import * as assert from "uvu/assert";
import { choosePools } from "../../../plugin/cluster/pool-choice.ts";
import { IpamError } from "../../../plugin/ipam/ipam-error.ts";
import type { PodObject } from "../../../plugin/kube/kube-api.ts";
import { FakeKube } from "../../support/fake-kube.ts";

function setup() {
  const k = new FakeKube();
  k.addPool("default-v4", { subnet: "10.1.0.0/24", ips: ["10.1.0.10-10.1.0.20"], default: true });
  k.addPool("default-v6", { subnet: "fd00:1::/64", ips: ["fd00:1::10-fd00:1::20"], default: true });
  k.addPool("ann-v4", { subnet: "10.2.0.0/24", ips: ["10.2.0.10"] });
  k.addPool("ns-v4", { subnet: "10.3.0.0/24", ips: ["10.3.0.10"] });
  k.addPool("cfg-v4", { subnet: "10.4.0.0/24", ips: ["10.4.0.10"] });
  k.namespaces.set("default", { metadata: { name: "default", labels: { team: "a" } } });
  k.nodes.set("node1", { metadata: { name: "node1", labels: { zone: "z1" } } });
  return k;
}

const choose = (k: FakeKube, pod: PodObject, opts: { ifname?: string; defaults?: { 4: string[]; 6: string[] }; network?: string } = {}) =>
  choosePools({
    api: k,
    pod,
    ifname: opts.ifname ?? "eth0",
    network: opts.network ?? "macvlan-ens192",
    nodeName: "node1",
    configDefaults: opts.defaults ?? { 4: [], 6: [] },
    namespace: () => k.getNamespace(pod.metadata.namespace!),
    node: () => k.getNode("node1"),
  });
const names = (r: Awaited<ReturnType<typeof choose>>) => r.families.map((f) => [f.family, f.pools.map((p) => p.name)]);

async function rejects(p: Promise<unknown>, kind: string, ...fragments: string[]) {
  try {
    await p;
  } catch (e) {
    assert.instance(e, IpamError);
    assert.is((e as IpamError).kind, kind, (e as Error).message);
    for (const f of fragments) assert.ok((e as Error).message.includes(f), `${(e as Error).message} should mention ${f}`);
    return;
  }
  assert.unreachable(`expected ${kind}`);
}

test("precedence: ippools annotation > ippool annotation > namespace > config > default pools", async () => {
  const k = setup();
  assert.equal(names(await choose(k, k.addPod("default", "p0"))), [
    [4, ["default-v4"]],
    [6, ["default-v6"]],
  ]);
  assert.equal(names(await choose(k, k.addPod("default", "p1"), { defaults: { 4: ["cfg-v4"], 6: [] } })), [[4, ["cfg-v4"]]]);
  k.namespaces.get("default")!.metadata.annotations = { "ipam.spidernet.io/default-ipv4-ippool": '["ns-v4"]' };
  assert.equal(names(await choose(k, k.addPod("default", "p2"), { defaults: { 4: ["cfg-v4"], 6: [] } })), [[4, ["ns-v4"]]]);
  const p3 = k.addPod("default", "p3", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["ann-v4"]}' } });
  assert.equal(names(await choose(k, p3)), [[4, ["ann-v4"]]]);
  const p4 = k.addPod("default", "p4", {
    annotations: {
      "ipam.spidernet.io/ippool": '{"ipv4": ["ann-v4"]}',
      "ipam.spidernet.io/ippools": '[{"interface": "net1", "ipv4": ["cfg-v4"]}, {"interface": "eth0", "ipv4": ["ns-v4"], "ipv6": ["default-v6"]}]',
    },
  });
  assert.equal(names(await choose(k, p4)), [
    [4, ["ns-v4"]],
    [6, ["default-v6"]],
  ]);
  assert.equal(names(await choose(k, p4, { ifname: "net1" })), [[4, ["cfg-v4"]]]);
  assert.equal(names(await choose(k, p4, { ifname: "net2" })), [[4, ["ann-v4"]]], "an interface the list omits falls through");
});

test("candidates are filtered: disabled, family, node, namespace, pod labels, network", async () => {
  const k = setup();
  const pod = (pools: string[], labels?: Record<string, string>, annotations: Record<string, string> = {}) =>
    k.addPod("default", `p-${Math.random().toString(36).slice(2, 8)}`, {
      annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: pools }), ...annotations },
      labels,
    });
  k.addPool("off", { subnet: "10.5.0.0/24", disable: true });
  k.addPool("node2-only", { subnet: "10.6.0.0/24", nodeName: ["node2"] });
  k.addPool("zone-z2", { subnet: "10.7.0.0/24", nodeAffinity: { matchLabels: { zone: "z2" } } });
  k.addPool("team-b", { subnet: "10.8.0.0/24", namespaceAffinity: { matchLabels: { team: "b" } } });
  k.addPool("kube-system-only", { subnet: "10.9.0.0/24", namespaceName: ["kube-system"] });
  k.addPool("db-only", { subnet: "10.10.0.0/24", podAffinity: { matchLabels: { app: "db" } } });
  k.addPool("other-net", { subnet: "10.11.0.0/24", multusName: ["kube-system/other"] });
  k.addPool("this-net", { subnet: "10.12.0.0/24", multusName: ["kube-system/macvlan-ens192"] });
  await rejects(
    choose(k, pod(["off", "node2-only", "zone-z2", "team-b", "kube-system-only", "db-only", "other-net", "default-v6"])),
    "no-pool",
    "off is disabled",
    "node2-only is for nodes node2, not node1",
    "zone-z2 nodeAffinity",
    "team-b namespaceAffinity",
    "kube-system-only is for namespaces kube-system",
    "db-only podAffinity",
    "other-net is for networks kube-system/other",
    "default-v6 is IPv6",
  );
  const onThisNet = { "k8s.v1.cni.cncf.io/networks": "kube-system/macvlan-ens192" };
  assert.equal(
    names(await choose(k, pod(["off", "db-only", "this-net"], { app: "db" }, onThisNet), { ifname: "net1" })),
    [[4, ["db-only", "this-net"]]],
    "order kept, refused ones dropped",
  );
});

test("multusName is judged on the NAD the pod's Multus annotations name, not on the network name the NAD's author chose", async () => {
  const k = setup();
  k.addPool("reserved", { subnet: "10.13.0.0/24", multusName: ["kube-system/net-x"] });
  k.addPool("bare", { subnet: "10.14.0.0/24", multusName: ["net-x"] });
  const pod = (networks: Record<string, string>) =>
    k.addPod("default", `m-${Math.random().toString(36).slice(2, 8)}`, { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["reserved"]}', ...networks } });
  const bare = (networks: Record<string, string>) =>
    k.addPod("default", `b-${Math.random().toString(36).slice(2, 8)}`, { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["bare"]}', ...networks } });
  const NETS = "k8s.v1.cni.cncf.io/networks";
  // A tenant's own NAD default/net-x whose network is also called net-x.
  await rejects(
    choose(k, pod({ [NETS]: "net-x" }), { network: "net-x", ifname: "net1" }),
    "no-pool",
    "reserved is for networks kube-system/net-x, not default/net-x",
  );
  await rejects(choose(k, pod({ [NETS]: "default/net-x" }), { network: "net-x", ifname: "net1" }), "no-pool", "not default/net-x");
  assert.equal(names(await choose(k, pod({ [NETS]: "kube-system/net-x" }), { network: "net-x", ifname: "net1" })), [[4, ["reserved"]]]);
  // A bare multusName entry is kube-system's, not "any namespace's".
  await rejects(choose(k, bare({ [NETS]: "default/net-x" }), { network: "net-x", ifname: "net1" }), "no-pool", "bare is for networks kube-system/net-x");
  assert.equal(names(await choose(k, bare({ [NETS]: "kube-system/net-x" }), { network: "net-x", ifname: "net1" })), [[4, ["bare"]]]);
  // The explicit interface decides, whatever the network is called.
  const json = pod({ [NETS]: '[{"name": "net-x", "namespace": "kube-system", "interface": "data0"}, {"name": "net-x"}]' });
  assert.equal(names(await choose(k, json, { network: "anything", ifname: "data0" })), [[4, ["reserved"]]]);
  await rejects(choose(k, json, { network: "net-x", ifname: "net2" }), "no-pool", "not default/net-x");
  // Ambiguous: refused, saying why.
  await rejects(
    choose(k, pod({ [NETS]: "kube-system/net-x, default/net-x" }), { network: "net-x", ifname: "net1" }),
    "no-pool",
    "unclear",
    "both name NAD net-x",
  );
  await rejects(
    choose(k, pod({ [NETS]: "kube-system/net-x, default/mine" }), { network: "net-x", ifname: "net2" }),
    "no-pool",
    "default/mine (another namespace, no interface) could be the one this ADD serves",
  );
  await rejects(choose(k, pod({}), { network: "net-x" }), "no-pool", "the pod has no k8s.v1.cni.cncf.io/networks");
  // The default network, replaced by the pod's annotation: a bare name is in kube-system (Multus' multusNamespace).
  const dflt = pod({ "v1.multus-cni.io/default-network": "net-x", [NETS]: "other" });
  assert.equal(names(await choose(k, dflt, { network: "net-x", ifname: "eth0" })), [[4, ["reserved"]]]);
  // Other pools are not affected by a pod whose networks cannot be told apart.
  k.addPool("free", { subnet: "10.15.0.0/24" });
  const both = k.addPod("default", "both", {
    annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["reserved", "free"]}', [NETS]: "kube-system/net-x, default/net-x" },
  });
  assert.equal(names(await choose(k, both, { network: "net-x", ifname: "net1" })), [[4, ["free"]]]);
});

test("missing pools and bad annotations are named", async () => {
  const k = setup();
  await rejects(
    choose(k, k.addPod("default", "a", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["nope"]}' } })),
    "not-found",
    "SpiderIPPool nope",
    "default/a",
  );
  await rejects(
    choose(k, k.addPod("default", "b", { annotations: { "ipam.spidernet.io/ippool": "{ipv4: [" } })),
    "bad-annotation",
    "ipam.spidernet.io/ippool",
    "default/b",
    "not valid JSON",
  );
  await rejects(
    choose(k, k.addPod("default", "c", { annotations: { "ipam.spidernet.io/ippools": '{"interface": "eth0"}' } })),
    "bad-annotation",
    "must be a list",
  );
  await rejects(choose(k, k.addPod("default", "d", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": [5]}' } })), "bad-annotation", "[5]");
  k.addPool("broken", { subnet: "10.20.0.0/24", ips: ["10.21.0.1"] });
  await rejects(
    choose(k, k.addPod("default", "e", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["broken"]}' } })),
    "bad-pool",
    "spiderippool broken spec.ips",
    "outside subnet",
  );
});

test("the namespace is read only when needed", async () => {
  const k = setup();
  const pod = k.addPod("default", "x", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["ann-v4"]}' } });
  await choose(k, pod);
  assert.not.ok(
    k.calls.some((c) => c.startsWith("getNamespace")),
    k.calls.join(", "),
  );
});

test.run();
