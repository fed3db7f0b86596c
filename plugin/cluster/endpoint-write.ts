/** The pod's BerthEndpoint: the binding an ADD writes, and an earlier incarnation's entry that it clears. */

import { IpamError } from "../ipam/ipam-error.ts";
import type { EndpointIp, EndpointObject, PodObject } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { AddState, Taken } from "./add-state.ts";
import { releaseClaimIf } from "./claims.ts";
import { entryAddresses, entryUid, setEntryAddress, withEntryUids } from "./endpoint-entries.ts";
import { incarnationUid, type Membership } from "./statefulset.ts";

/**
 * Writes this interface's entry into the pod's BerthEndpoint (the binding).
 * Every other interface's entry stays as it is, whichever incarnation it
 * belongs to: it is its own network's to re-take or clear, or the
 * controller's. `member` is a fact of the pod (its verified StatefulSet, or
 * the one an orphaned incarnation had), whatever this network's
 * `enableStatefulSet`: another network of the pod may keep its address.
 */
export async function writeEndpoint(
  s: AddState,
  current: EndpointObject | undefined,
  pod: PodObject,
  member: Membership | undefined,
  taken: Taken[],
): Promise<void> {
  const { api, ifname, containerId, undo } = s;
  const uid = incarnationUid(pod);
  const entry: EndpointIp = { interface: ifname, network: s.conf.name, podUID: uid };
  for (const t of taken) setEntryAddress(entry, t.pool, t.address);
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
    const others = ep ? withEntryUids(ep).filter((i) => i.interface !== ifname) : [];
    const spec = {
      podUID: uid,
      node: s.nodeName,
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
  throw new IpamError("try-again", `endpoint ${ns}/${name} kept changing under us`);
}

/**
 * An earlier incarnation of this pod name left an entry for this interface,
 * and this ADD does not take it over: free what that incarnation still
 * claims there. That incarnation's pod object is gone (a name holds one pod
 * at a time). A StatefulSet binding (a claim naming its set) is left to the
 * controller, which knows whether the set still keeps it; other interfaces'
 * entries are their own networks' business. Returns whether the entry is
 * such a binding, still claimed.
 */
export async function releaseStaleEntry(s: AddState, ep: EndpointObject, entry: EndpointIp): Promise<boolean> {
  const { api, log } = s;
  const staleUid = entryUid(ep, entry);
  let keptForSet = false;
  for (const address of entryAddresses(entry)) {
    const freed = await releaseClaimIf(api, address, (c) => {
      if (c.spec.podUID !== staleUid || c.spec.interface !== entry.interface || !samePodName(c.spec, ep)) return false;
      if (c.spec.statefulSet) keptForSet = true;
      return !c.spec.statefulSet;
    });
    if (freed) {
      log.info("address released: left by an earlier pod of this name", {
        address,
        pool: freed,
        pod: `${ep.metadata.namespace}/${ep.metadata.name}`,
        ifname: entry.interface,
        uid: staleUid,
      });
    }
  }
  return keptForSet;
}

function samePodName(spec: { podNamespace: string; podName: string }, ep: EndpointObject): boolean {
  return spec.podNamespace === ep.metadata.namespace && spec.podName === ep.metadata.name;
}
