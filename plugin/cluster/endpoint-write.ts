/** The pod's BerthEndpoint: the binding an ADD writes, and an earlier pod's that it clears. */
import type { EndpointIp, EndpointObject, PodObject } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import { isKind } from "../support/errors.ts";
import type { AddState, Taken } from "./add-state.ts";
import { releaseClaimIf } from "./claims.ts";
import type { Membership } from "./statefulset.ts";

/** Writes the pod's BerthEndpoint with this interface's addresses (the binding). */
export async function writeEndpoint(
  s: AddState,
  current: EndpointObject | undefined,
  pod: PodObject,
  member: Membership | undefined,
  taken: Taken[],
): Promise<void> {
  const { api, ifname, containerId, undo } = s;
  const node = s.nodeName;
  const entry: EndpointIp = { interface: ifname };
  for (const t of taken) {
    const cidr = `${t.address}/${t.pool.subnet.prefix}`;
    if (t.family === 4) Object.assign(entry, { ipv4: cidr, ipv4Pool: t.pool.name }, t.pool.gateway ? { ipv4Gateway: t.pool.gateway } : {});
    else Object.assign(entry, { ipv6: cidr, ipv6Pool: t.pool.name }, t.pool.gateway ? { ipv6Gateway: t.pool.gateway } : {});
  }
  const uid = pod.metadata.uid!;
  const ns = pod.metadata.namespace!;
  const name = pod.metadata.name;
  // The undo is registered before the write: a write whose answer is lost (the server did it, this
  // ADD never heard) must be undone too, or the endpoint would name claims the undo deletes.
  let before: EndpointObject | undefined;
  undo.push(`restore endpoint ${ns}/${name}`, async () => {
    const now = await api.getEndpoint(ns, name);
    if (!now || now.spec.containerID !== containerId || now.spec.podUID !== uid) return; // not ours (any more)
    if (before) await api.updateEndpoint({ metadata: now.metadata, spec: before.spec });
    else await api.deleteEndpoint(ns, name, now.metadata.uid!, now.metadata.resourceVersion);
  });
  for (let attempt = 0; attempt < 5; attempt++) {
    const ep = attempt === 0 ? current : await api.getEndpoint(ns, name);
    before = ep;
    // Other interfaces of the same pod (or the same StatefulSet member) stay.
    const others = ep && (ep.spec.podUID === uid || member) ? ep.spec.ips.filter((i) => i.interface !== ifname) : [];
    const spec = {
      podUID: uid,
      node,
      containerID: containerId,
      ownerControllerType: member ? ("StatefulSet" as const) : ("None" as const),
      ...(member ? { ownerControllerName: member.statefulSet } : {}),
      ips: [...others, entry],
    };
    try {
      if (ep) await api.updateEndpoint({ metadata: ep.metadata, spec });
      else await api.createEndpoint({ metadata: { name, namespace: ns }, spec });
      return;
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err;
    }
  }
  throw new IpamError("try-again", `endpoint ${pod.metadata.namespace}/${pod.metadata.name} kept changing under us`);
}

/** An earlier pod of this name (not a StatefulSet member) left an endpoint: free what its UID still claims. */
export async function releaseStaleEndpoint(s: AddState, ep: EndpointObject): Promise<void> {
  const { api, log } = s;
  for (const entry of ep.spec.ips) {
    for (const cidr of [entry.ipv4, entry.ipv6]) {
      if (!cidr) continue;
      const address = cidr.split("/")[0];
      const freed = await releaseClaimIf(api, address, (c) => c.spec.podUID === ep.spec.podUID);
      if (freed) {
        log.info("address released: left by an earlier pod of this name", {
          address,
          pool: freed,
          pod: `${ep.metadata.namespace}/${ep.metadata.name}`,
          uid: ep.spec.podUID,
        });
      }
    }
  }
}
