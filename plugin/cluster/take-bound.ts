/** Taking an address the pod is already bound to: its own from before, or its ordinal's. */
import { type Family, addressAt, formatAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { Pool } from "../ipam/pool.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Claiming, Taken } from "./add-state.ts";
import { claimFor, claimNameOf } from "./claims.ts";
import { recordPending } from "./pending-lease.ts";

/** Whether the claim names the holder's pod (any sandbox, any incarnation). */
const samePodAs = (claim: { spec: { podNamespace: string; podName: string } }, s: Claiming) =>
  claim.spec.podNamespace === s.holder.namespace && claim.spec.podName === s.holder.name;

/** Drops a local lease of `address` that the API server says is stale; leaves one that may be live. */
async function dropStaleLocalLease(s: Claiming, address: string): Promise<string | undefined> {
  const local = s.store.leaseAt(s.conf.name, address);
  if (!local) return undefined;
  const samePod = local.pod_namespace === s.holder.namespace && local.pod_name === s.holder.name;
  // The API server decides whose the address is. A local lease is stale when it is an older
  // sandbox of this pod (its DEL never came), or when it belongs to another pod whose ADD had
  // completed but whose claim is gone or now held by this pod (the controller freed it while
  // this node never saw the DEL). A pending lease of another pod is an ADD in flight: a conflict.
  const claim = samePod ? undefined : await s.api.getClaim(claimNameOf(address));
  const ours = !!claim && samePodAs(claim, s);
  if (samePod || ours || (local.state === "active" && !claim)) {
    s.store.deleteLease(local.id);
    if (!samePod) s.log.info("stale local lease dropped", { address, container: local.container_id, pod: `${local.pod_namespace}/${local.pod_name}` });
    return undefined;
  }
  return local.container_id;
}

/** Takes back the pod's bound address: its claim is updated to this sandbox, or re-created if it vanished. */
export async function retakeBound(s: Claiming, pool: Pool, address: string): Promise<Taken> {
  const { api, store, holder } = s;
  const localHolder = await dropStaleLocalLease(s, address);
  const leaseId = recordPending(s, pool, address);
  if (leaseId === undefined) throw new IpamError("conflict", `address ${address} bound to pod ${holder.namespace}/${holder.name} is leased on this node to container ${localHolder}`);
  for (let attempt = 0; attempt < 3; attempt++) {
    const claim = await api.getClaim(claimNameOf(address));
    if (claim && !samePodAs(claim, s)) {
      store.immediate(() => store.deleteLease(leaseId));
      throw new IpamError("conflict", `address ${address} bound to pod ${holder.namespace}/${holder.name} is claimed by pod ${claim.spec.podNamespace}/${claim.spec.podName} on node ${claim.spec.node}`);
    }
    try {
      if (claim) {
        await api.updateClaim(claimFor(pool.family, address, pool.name, holder, claim));
      } else {
        const created = await api.createClaim(claimFor(pool.family, address, pool.name, holder));
        s.counts.add(pool.name, 1);
        s.undo.push(`delete claim ${created.metadata.name}`, async () => {
          if (await api.deleteClaim(created.metadata.name, created.metadata.uid!)) s.counts.add(pool.name, -1);
        });
      }
      store.setHint(pool.name, address, true);
      return { family: pool.family, address, pool, leaseId };
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err; // lost a race with another writer: read again
    }
  }
  throw new IpamError("conflict", `address ${address} of pod ${holder.namespace}/${holder.name}: its claim kept changing under us`);
}

/**
 * Ordinal-ordered mode: the address at position `index` of the pools' addresses
 * (in order, spilling from one pool into the next). Taken by another pod: an
 * error, never a silent substitute, since operators rely on the prediction.
 */
export async function takeOrdinal(s: Claiming, family: Family, candidates: Pool[], index: number): Promise<Taken> {
  const { holder } = s;
  let rest = BigInt(index);
  for (const pool of candidates.filter((p) => !p.deleting)) {
    if (rest >= pool.total) {
      rest -= pool.total;
      continue;
    }
    const address = formatAddress(pool.family, addressAt(pool.ranges, rest)!);
    const holderNow = await s.api.getClaim(claimNameOf(address));
    if (holderNow && !samePodAs(holderNow, s)) {
      throw new IpamError("conflict", `address ${address} (position ${index} of pool ${pool.name}, for ordinal-ordered pod ${holder.namespace}/${holder.name}) is claimed by pod ${holderNow.spec.podNamespace}/${holderNow.spec.podName}`);
    }
    return retakeBound(s, pool, address);
  }
  throw new IpamError("exhausted", `no IPv${family} address at position ${index} for ordinal-ordered pod ${holder.namespace}/${holder.name}: pools ${candidates.map((p) => `${p.name} (${p.total})`).join(", ")} are smaller`);
}
