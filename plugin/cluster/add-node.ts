/**
 * The node a cluster-mode ADD runs on. It decides which pools may serve
 * (`nodeName` / `nodeAffinity`) and is recorded in the claim, where the
 * controller reads it to tell whether the holder's node is gone. So it is a
 * fact of the pod (its `spec.nodeName`, set by the scheduler, or by the
 * kubelet for a static pod), never of the configuration: a
 * NetworkAttachmentDefinition's author writes `ipam.nodeName`.
 */
import { hostname } from "node:os";
import { IpamError } from "../ipam/ipam-error.ts";
import type { PodObject } from "../kube/kube-api.ts";

/**
 * The pod's node. A configured `ipam.nodeName` may only repeat it (CNI code 7
 * otherwise). A pod without a node (never one a kubelet runs) falls back to
 * the configured name, then the host name.
 */
export function nodeOfAdd(configured: string | undefined, pod: PodObject): string {
  const node = pod.spec?.nodeName;
  if (!node) return configured ?? hostname();
  if (configured !== undefined && configured !== node) {
    throw new IpamError(
      "invalid-config",
      `ipam.nodeName ${JSON.stringify(configured)} is not the node of pod ${pod.metadata.namespace}/${pod.metadata.name}, which runs on ${JSON.stringify(node)} (its spec.nodeName): cluster mode serves the pod's own node`,
    );
  }
  return node;
}
