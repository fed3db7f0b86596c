/** Which NAD an ADD serves, from the pod's Multus annotations (plugin/ipam/multus-network.ts). */
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  DEFAULT_NETWORK_ANNOTATION,
  ipamClaimNames,
  ipamClaimReference,
  NETWORKS_ANNOTATION,
  parseNetworkAnnotation,
  qualifiedMultusName,
  resolveNetwork,
} from "../../plugin/ipam/multus-network.ts";

const parse = (v: string) => parseNetworkAnnotation(v, "pods-ns", NETWORKS_ANNOTATION).map(({ annotation, ...e }) => e);

test("text form: name, ns/name, name@iface, ns/name@iface, comma-separated, spaces trimmed", () => {
  assert.equal(parse("a, kube-system/b ,c@data0, other/d@net5"), [
    { namespace: "pods-ns", name: "a" },
    { namespace: "kube-system", name: "b" },
    { namespace: "pods-ns", name: "c", interface: "data0" },
    { namespace: "other", name: "d", interface: "net5" },
  ]);
  assert.equal(parse(" ns / n @ i "), [{ namespace: "ns", name: "n", interface: "i" }], "each part trimmed, as Multus does");
});

test("JSON form: name, namespace, interface (and the old interfaceRequest); keys matched without regard to case, as Go does", () => {
  assert.equal(parse('[{"name": "a"}, {"name": "b", "namespace": "kube-system", "interface": "data0", "ips": ["10.1.1.1"]}]'), [
    { namespace: "pods-ns", name: "a" },
    { namespace: "kube-system", name: "b", interface: "data0" },
  ]);
  assert.equal(parse('[{"name": "a", "interfaceRequest": "old0"}]'), [{ namespace: "pods-ns", name: "a", interface: "old0" }]);
  assert.equal(parse('[{"name": "a", "interface": "new0", "interfaceRequest": "old0"}]'), [{ namespace: "pods-ns", name: "a", interface: "new0" }]);
  assert.equal(parse('[{"Name": "a", "NameSpace": "kube-system", "INTERFACE": "x0"}]'), [{ namespace: "kube-system", name: "a", interface: "x0" }]);
  assert.equal(parse('[{"name": "a", "nameſpace": "kube-system"}]'), [{ namespace: "kube-system", name: "a" }], "ſ folds to s in Go");
  assert.equal(parse('[{"name": "a", "namespace": ""}]'), [{ namespace: "pods-ns", name: "a" }], "an empty namespace is the default one");
});

test("malformed annotations are refused, saying what is wrong", () => {
  const bad: [string, string][] = [
    ["a/b/c", 'more than one "/"'],
    ["a@b@c", 'more than one "@"'],
    ["Net_X", "not a DNS-1123 label"],
    ["ns/", "names no network"],
    ["a,", "names no network"],
    ["a@this-is-too-long0", "invalid interface name"],
    ["[{", "not valid JSON"],
    ['{"name": "a"}', "must be a list"],
    ['["a"]', "entry 0 is not an object"],
    ['[{"namespace": "x"}]', "entry 0 names no network"],
    ['[{"name": 5}]', "name is not a string"],
    ['[{"name": "a", "namespace": "x", "Namespace": "kube-system"}]', "gives namespace twice"],
  ];
  for (const [value, why] of bad) {
    try {
      parse(value);
      assert.unreachable(`${value} should be refused`);
    } catch (err) {
      assert.ok((err as Error).message.includes(why), `${value}: ${(err as Error).message} should say ${why}`);
    }
  }
});

const id = (annotations: Record<string, string>, ifname: string, network: string) => resolveNetwork({ annotations, podNamespace: "tenant", ifname, network });
const nets = (v: string) => ({ [NETWORKS_ANNOTATION]: v });

test("resolve: the entry whose explicit interface is CNI_IFNAME, whatever the network's name", () => {
  assert.is(id(nets("kube-system/net-x@data0, net-x"), "data0", "anything").nad, "kube-system/net-x");
  assert.is(id(nets('[{"name": "net-x", "interface": "data1"}]'), "data1", "net-x").nad, "tenant/net-x");
  assert.match(id(nets("a@data0, b@data0"), "data0", "a").why ?? "", "both ask for interface data0");
});

test("resolve: else the one interface-less entry with the network's name; never by position", () => {
  assert.is(id(nets("net-x"), "net1", "net-x").nad, "tenant/net-x", "no namespace: the pod's");
  assert.is(id(nets("kube-system/net-x"), "net1", "net-x").nad, "kube-system/net-x");
  assert.is(id(nets("net-a, net-b"), "net2", "net-b").nad, "tenant/net-b", "two entries of one namespace: the name tells them apart");
  assert.is(id(nets("kube-system/net-x@data0, net-x"), "net2", "net-x").nad, "tenant/net-x", "an entry asking for another interface is not this one");
  assert.match(id(nets("net-a, net-b"), "net1", "net-c").why ?? "", "no entry of the pod's networks (tenant/net-a, tenant/net-b)");
  assert.match(id(nets("net-a"), "eth0", "net-a").why ?? "", "no entry", "an extra network without an interface is never eth0");
  assert.match(id(nets("kube-system/net-x, tenant/net-x"), "net1", "net-x").why ?? "", "both name NAD net-x");
  const rival = id(nets("kube-system/net-x, tenant/mine"), "net2", "net-x");
  assert.match(rival.why ?? "", "tenant/mine (another namespace, no interface) could be the one this ADD serves");
  assert.match(rival.why ?? "", "ns/name@iface");
});

test("resolve: Multus' default-network annotation names the default interface's NAD, in kube-system unless it says", () => {
  const d = (v: string, extra: Record<string, string> = {}) => ({ [DEFAULT_NETWORK_ANNOTATION]: v, ...extra });
  assert.is(id(d("net-x"), "eth0", "net-x").nad, "kube-system/net-x");
  assert.is(id(d("tenant/mine"), "eth0", "mine").nad, "tenant/mine");
  assert.is(id(d("kube-system/net-x@eth0", nets("tenant/net-x")), "eth0", "net-x").nad, "kube-system/net-x", "its explicit interface decides");
  assert.is(id(d("net-x", nets("tenant/other")), "net1", "other").nad, "tenant/other", "the extra network, by name");
  assert.is(id(d("net-x", nets("tenant/net-x")), "eth0", "net-x").nad, "kube-system/net-x", "an extra network is named net<N>, never eth0");
  assert.is(id(d("net-x", nets("tenant/net-x")), "net1", "net-x").nad, "tenant/net-x", "and the default network never net<N>");
  assert.match(id(d("tenant/mine", nets("kube-system/net-x")), "net1", "mine").why ?? "", "no entry", "the default network's NAD is not an extra one");
  assert.match(id(d("a, b"), "eth0", "a").why ?? "", "names 2 networks, Multus takes exactly one");
  assert.match(id(d(""), "eth0", "a").why ?? "", `annotation ${DEFAULT_NETWORK_ANNOTATION} cannot be read`);
});

test("resolve: no annotation, or one that cannot be read, tells nothing", () => {
  assert.match(id({}, "eth0", "net-x").why ?? "", "has no k8s.v1.cni.cncf.io/networks");
  assert.match(id(nets(""), "eth0", "net-x").why ?? "", "has no k8s.v1.cni.cncf.io/networks");
  assert.match(id(nets("[oops"), "net1", "net-x").why ?? "", "annotation k8s.v1.cni.cncf.io/networks cannot be read (not valid JSON");
});

test("a multusName entry without a namespace is kube-system's", () => {
  assert.is(qualifiedMultusName("net-x"), "kube-system/net-x");
  assert.is(qualifiedMultusName("tenant/net-x"), "tenant/net-x");
});

test("ipam-claim-reference: read from the element whose explicit interface is CNI_IFNAME only", () => {
  const value = JSON.stringify([
    { name: "vm-net", interface: "net1", "ipam-claim-reference": "vm1.net1" },
    { name: "other", interface: "net2" },
  ]);
  const a = { [NETWORKS_ANNOTATION]: value };
  assert.is(ipamClaimReference(a, "vms", "net1"), "vm1.net1");
  assert.is(ipamClaimReference(a, "vms", "net2"), undefined);
  assert.is(ipamClaimReference({ [NETWORKS_ANNOTATION]: "vm-net@net1" }, "vms", "net1"), undefined, "the text form carries none");
  assert.is(ipamClaimReference({}, "vms", "net1"), undefined);
  assert.equal(ipamClaimNames(a, "vms"), ["vm1.net1"]);
  // Go's decoder matches keys without regard to case: so does berth.
  assert.is(ipamClaimReference({ [NETWORKS_ANNOTATION]: '[{"name":"n","interface":"net1","IPAM-Claim-Reference":"x"}]' }, "vms", "net1"), "x");
});

test("ipam-claim-reference in an element without an interface is refused, naming it", () => {
  const a = { [NETWORKS_ANNOTATION]: JSON.stringify([{ name: "vm-net", "ipam-claim-reference": "vm1.net1" }]) };
  assert.throws(() => ipamClaimReference(a, "vms", "net1"), /vms\/vm-net names ipam-claim-reference "vm1.net1" without an "interface"/);
  assert.throws(() => ipamClaimReference({ [NETWORKS_ANNOTATION]: "[{" }, "vms", "net1"), /cannot be read/);
});

test.run();
