/** The node a cluster ADD runs on is the pod's (plugin/cluster/add-node.ts). */

import { hostname } from "node:os";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { nodeOfAdd } from "../../../plugin/cluster/add-node.ts";
import { IpamError } from "../../../plugin/ipam/ipam-error.ts";
import type { PodObject } from "../../../plugin/kube/kube-api.ts";

const pod = (nodeName?: string): PodObject => ({ metadata: { name: "p", namespace: "ns" }, spec: nodeName ? { nodeName } : {} });

test("the pod's spec.nodeName; ipam.nodeName may only repeat it", () => {
  assert.is(nodeOfAdd(undefined, pod("node1")), "node1");
  assert.is(nodeOfAdd("node1", pod("node1")), "node1");
  try {
    nodeOfAdd("node2", pod("node1"));
    assert.unreachable("a NAD must not move an ADD to another node's pools");
  } catch (err) {
    assert.instance(err, IpamError);
    assert.is((err as IpamError).kind, "invalid-config");
    for (const part of ["ipam.nodeName", '"node2"', "ns/p", '"node1"']) assert.ok((err as Error).message.includes(part), (err as Error).message);
  }
});

test("a pod without a node: the configured name, then the host name", () => {
  assert.is(nodeOfAdd("node9", pod()), "node9");
  assert.is(nodeOfAdd(undefined, pod()), hostname());
});

test.run();
