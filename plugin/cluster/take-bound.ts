/** Taking an address the pod is already bound to: its own from before, or its ordinal's. */
import { addressAt, type Family, formatAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { Pool } from "../ipam/pool.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Claiming, Taken } from "./add-state.ts";
import { claimFor, claimNameOf, samePod } from "./claims.ts";
import { recordPending } from "./pending-lease.ts";
import { leaseHoldsClaim, pendingPastDeadline } from "./stale-leases.ts";

/**
 * Why this ADD may not take the claimed address, or undefined when it may:
 * the claim is this pod's on this interface. Another pod, or another
 * interface of this pod (two networks asking for one ordinal address), may not.
 */
function heldElsewhere(claim: ClaimObject, s: Claiming): string | undefined {
  // An IPAMClaim's address is any pod's that names that IPAMClaim (same UID), and no other's.
  const ic = claim.spec.ipamClaim;
  if (s.holder.ipamClaim || ic) {
    if (ic && ic.uid === s.holder.ipamClaim?.uid) return undefined;
    if (ic) return `IPAMClaim ${claim.spec.podNamespace}/${ic.name} (UID ${ic.uid}), last taken by pod ${claim.spec.podName}`;
  }
  if (!samePod(claim, s.holder)) return `pod ${claim.spec.podNamespace}/${claim.spec.podName} on node ${claim.spec.node}`;
  if (claim.spec.interface !== s.holder.ifname) return `interface ${claim.spec.interface} of the same pod`;
  return undefined;
}

/** Drops a local lease of `address` that the API server says is stale; returns the container of one that may be live. */
async function dropStaleLocalLease(s: Claiming, address: string): Promise<string | undefined> {
  const local = s.store.leaseAt(s.conf.name, address);
  if (!local) return undefined;
  const ownPod = local.pod_namespace === s.holder.namespace && local.pod_name === s.holder.name && local.ifname === s.holder.ifname;
  // The API server decides whose the address is. A local lease is stale when it is an older
  // sandbox of this pod (its DEL never came), or when it belongs to another pod whose ADD had
  // completed but whose claim is gone or now held by this pod (the controller freed it while
  // this node never saw the DEL). A pending lease of another pod is an ADD in flight: a conflict.
  const claim = ownPod ? undefined : await s.api.getClaim(claimNameOf(address));
  const ours = !!claim && !heldElsewhere(claim, s);
  // A pending lease past its ADD's deadline whose claim is not that ADD's: the ADD is over (stale-leases.ts).
  const expired = pendingPastDeadline(local, s.holder.addDeadlineSeconds * 1000) && !(claim && leaseHoldsClaim(claim, local));
  if (ownPod || ours || (local.state === "active" && !claim) || expired) {
    s.store.deleteLease(local.id);
    if (!ownPod) s.log.info("stale local lease dropped", { address, container: local.container_id, pod: `${local.pod_namespace}/${local.pod_name}` });
    return undefined;
  }
  return local.container_id;
}

/**
 * Takes back the pod's bound address: its claim is updated to this sandbox,
 * or re-created if it vanished (free again: the create decides). A failed
 * ADD gives the claim back exactly as it was, so the binding survives.
 * `insist` (an ordinal-ordered address, which operators predict): an address
 * held by someone else is a conflict (102). Otherwise undefined, and the
 * caller takes a new address: a binding whose claim another pod holds was
 * released, and is stale.
 */
export async function retakeBound(s: Claiming, pool: Pool, address: string, insist = true): Promise<Taken | undefined> {
  const { api, store, holder } = s;
  const name = claimNameOf(address);
  if (!insist) {
    const claim = await api.getClaim(name);
    if (claim && heldElsewhere(claim, s)) return undefined;
  }
  const localHolder = await dropStaleLocalLease(s, address);
  const leaseId = recordPending(s, pool, address);
  if (leaseId === undefined) {
    if (!insist) return undefined;
    throw new IpamError("conflict", `address ${address} bound to pod ${holder.namespace}/${holder.name} is leased on this node to container ${localHolder}`);
  }
  s.undo.push(`drop pending lease of ${address}`, async () => store.deleteLease(leaseId));
  for (let attempt = 0; attempt < 3; attempt++) {
    const claim = await api.getClaim(name);
    const elsewhere = claim && heldElsewhere(claim, s);
    if (elsewhere) {
      store.immediate(() => store.deleteLease(leaseId));
      if (!insist) return undefined;
      throw new IpamError(
        "conflict",
        `address ${address} bound to pod ${holder.namespace}/${holder.name} interface ${holder.ifname} is claimed by ${elsewhere}`,
      );
    }
    try {
      if (claim) {
        const updated = await api.updateClaim(claimFor(pool.family, address, pool.name, holder, claim));
        s.undo.push(`restore claim ${name}`, () => restoreClaim(s, claim, updated));
      } else {
        const created = await api.createClaim(claimFor(pool.family, address, pool.name, holder));
        s.undo.push(`delete claim ${created.metadata.name}`, async () => {
          await api.deleteClaim(created.metadata.name, created.metadata.uid!, created.metadata.resourceVersion);
        });
      }
      // The hint is written with the lease's activation (cluster-add.ts).
      return { family: pool.family, address, pool, leaseId };
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err; // lost a race with another writer: read again
    }
  }
  throw new IpamError("conflict", `address ${address} of pod ${holder.namespace}/${holder.name}: its claim kept changing under us`);
}

/** Puts a re-taken claim back as it was before this ADD, unless someone changed it since. */
async function restoreClaim(s: Claiming, before: ClaimObject, ours: ClaimObject): Promise<void> {
  const now = await s.api.getClaim(before.metadata.name);
  if (!now || now.metadata.uid !== ours.metadata.uid || now.metadata.resourceVersion !== ours.metadata.resourceVersion) return;
  await s.api.updateClaim({ metadata: now.metadata, spec: before.spec });
}

/**
 * Ordinal-ordered mode: the address at position `index` of the pools' addresses
 * (in order, spilling from one pool into the next). Taken by another pod, or by
 * another interface of this one: an error, never a silent substitute, since
 * operators rely on the prediction.
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
    const elsewhere = holderNow && heldElsewhere(holderNow, s);
    if (elsewhere) {
      throw new IpamError(
        "conflict",
        `address ${address} (position ${index} of pool ${pool.name}, for ordinal-ordered pod ${holder.namespace}/${holder.name}) is claimed by ${elsewhere}`,
      );
    }
    return (await retakeBound(s, pool, address))!;
  }
  throw new IpamError(
    "exhausted",
    `no IPv${family} address at position ${index} for ordinal-ordered pod ${holder.namespace}/${holder.name}: pools ${candidates.map((p) => `${p.name} (${p.total})`).join(", ")} are smaller`,
  );
}
