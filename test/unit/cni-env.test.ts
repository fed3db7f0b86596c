import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseCniArgs, readCniEnv } from "../../plugin/cni/cni-env.ts";
import { CniError } from "../../plugin/cni/cni-error.ts";
import { looksLikeStatefulSetPod, podIdentity } from "../../plugin/ipam/pod-identity.ts";

const code4 = (fn: () => unknown, fragment: string) => {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CniError);
    assert.is((e as CniError).code, 4);
    assert.ok((e as CniError).msg.includes(fragment), (e as CniError).msg);
    return;
  }
  assert.unreachable("expected code 4");
};

test("required variables per command; empty counts as unset", () => {
  code4(() => readCniEnv({}), "CNI_COMMAND");
  code4(() => readCniEnv({ CNI_COMMAND: "ADDD" }), '"ADDD"');
  code4(() => readCniEnv({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "c", CNI_IFNAME: "eth0", CNI_NETNS: "" }), "CNI_NETNS");
  code4(() => readCniEnv({ CNI_COMMAND: "DEL", CNI_IFNAME: "eth0" }), "CNI_CONTAINERID");
  assert.is(readCniEnv({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c", CNI_IFNAME: "eth0" }).netns, "");
  assert.is(readCniEnv({ CNI_COMMAND: "GC" }).command, "GC");
  assert.is(readCniEnv({ CNI_COMMAND: "VERSION" }).command, "VERSION");
});

test("container ID and interface name are validated", () => {
  const env = { CNI_COMMAND: "ADD", CNI_NETNS: "/x", CNI_IFNAME: "eth0", CNI_CONTAINERID: "c1" };
  code4(() => readCniEnv({ ...env, CNI_CONTAINERID: "-bad" }), '"-bad"');
  code4(() => readCniEnv({ ...env, CNI_IFNAME: "a/b" }), '"a/b"');
  code4(() => readCniEnv({ ...env, CNI_IFNAME: "x".repeat(16) }), "CNI_IFNAME");
});

test("CNI_ARGS split on the first '=' and IgnoreUnknown", () => {
  const a = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=a=b;FOO=bar");
  assert.is(a.get("K8S_POD_NAME"), "a=b");
  code4(() => parseCniArgs("FOO=bar"), '"FOO"');
  code4(() => parseCniArgs("IgnoreUnknown=1;novalue"), '"novalue"');
  assert.is(parseCniArgs("").size, 0);
});

test("pod identity needs namespace and name", () => {
  assert.equal(podIdentity(parseCniArgs("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u")), { namespace: "ns", name: "p", uid: "u" });
  assert.is(podIdentity(parseCniArgs("K8S_POD_NAME=p")), undefined);
});

test("StatefulSet names are inferred from the ordinal suffix", () => {
  for (const yes of ["test-sts-0", "test-sts-12", "db-1"]) assert.ok(looksLikeStatefulSetPod(yes), yes);
  for (const no of ["test-sts", "web-7d9f5c6b8-xk2pq", "web-7d9f5c6b8-24567", "ds-24567", "x-01", "0"]) assert.not.ok(looksLikeStatefulSetPod(no), no);
});

test.run();
