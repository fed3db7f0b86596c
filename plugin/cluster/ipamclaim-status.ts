/**
 * What an IPAMClaim ADD writes besides the claims: the IPAMClaim's status
 * (`ips`, `ownerPod`, a condition naming the pools) and the finalizer that
 * seals each claim. Both are retried when an answer is lost: a write that
 * was done is recognised on a re-read, never repeated blindly, and never
 * makes the ADD take other addresses.
 */
import { IpamError } from "../ipam/ipam-error.ts";
import { resultIp } from "../ipam/pool.ts";
import { IPAMCLAIM_FINALIZER } from "../kube/crd.ts";
import type { IpamClaimCondition, IpamClaimObject } from "../kube/kube-api.ts";
import { KubeConflictError, KubeUnreachableError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Claiming, Taken } from "./add-state.ts";
import { claimNameOf } from "./claims.ts";

/** The condition berth sets on an IPAMClaim it allocated for. */
export const ALLOCATED_CONDITION = "IPsAllocated";
const ATTEMPTS = 4;

/** A failure worth a re-read and another try: a lost or refused-as-stale write, an unreachable server. */
const retriable = (err: unknown) => isKind(err, KubeConflictError) || isKind(err, KubeUnreachableError);

/**
 * Writes `status.ips` (CIDR strings), `status.ownerPod` (this pod) and the
 * condition, on the IPAMClaim as read (resourceVersion). Another writer in
 * between: read again and write again, unless that writer was another ADD of
 * this IPAMClaim that took other addresses at the same time; the status it
 * wrote decides, and this ADD gives its own back (try-again).
 */
export async function writeIpamClaimStatus(s: Claiming, ic: IpamClaimObject, taken: Taken[]): Promise<void> {
  const { namespace: ns, name } = ic.metadata;
  const ips = taken.map((t) => resultIp(t.pool, t.address).address);
  const owner = s.holder.name;
  let cur = ic;
  let last: unknown;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (reports(cur, ips, owner)) return;
    try {
      await s.api.updateIpamClaimStatus({ metadata: cur.metadata, spec: cur.spec, status: statusFor(cur, ips, owner, taken) });
      return;
    } catch (err) {
      if (!retriable(err)) throw err;
      last = err;
    }
    const again = await s.api.getIpamClaim(ns!, name);
    if (!again || again.metadata.uid !== ic.metadata.uid) {
      throw new IpamError("not-found", `IPAMClaim ${ns}/${name} (UID ${ic.metadata.uid}) was deleted while pod ${ns}/${owner}'s ADD ran`);
    }
    await yieldToRace(s, again, taken);
    cur = again;
  }
  throw new IpamError("try-again", `status of IPAMClaim ${ns}/${name} not written after ${ATTEMPTS} attempts: ${(last as Error)?.message}`);
}

/** Whether the IPAMClaim already reports these addresses and owner (a write whose answer was lost). */
function reports(ic: IpamClaimObject, ips: string[], owner: string): boolean {
  const have = ic.status?.ips ?? [];
  return ic.status?.ownerPod?.name === owner && have.length === ips.length && ips.every((ip) => have.includes(ip));
}

function statusFor(ic: IpamClaimObject, ips: string[], owner: string, taken: Taken[]): NonNullable<IpamClaimObject["status"]> {
  const pools = [...new Set(taken.map((t) => t.pool.name))].join(", ");
  const prev = ic.status?.conditions?.find((c) => c.type === ALLOCATED_CONDITION);
  const message = `berth: ${ips.join(", ")} from pool ${pools}, held for pod ${owner}`;
  const condition: IpamClaimCondition = {
    type: ALLOCATED_CONDITION,
    status: "True",
    reason: "Allocated",
    message,
    // The transition time moves only when the condition's status does (metav1.Condition's convention).
    lastTransitionTime: prev?.status === "True" ? prev.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    ...(ic.metadata.generation ? { observedGeneration: ic.metadata.generation } : {}),
  };
  const others = (ic.status?.conditions ?? []).filter((c) => c.type !== ALLOCATED_CONDITION);
  return { ...ic.status, ips, ownerPod: { name: owner }, conditions: [...others, condition] };
}

/**
 * Two first ADDs of one IPAMClaim at once each took a free address. Whoever
 * wrote the status first won: if the status now reports another address of
 * a family this ADD took, this ADD gives its own back (its undo log deletes
 * the claim it created) and is run again by the runtime, finding the winner's.
 */
async function yieldToRace(s: Claiming, ic: IpamClaimObject, taken: Taken[]): Promise<void> {
  const reported = new Set((ic.status?.ips ?? []).map((ip) => ip.split("/")[0]));
  if (reported.size === 0) return;
  const held = await s.api.listClaimsOfIpamClaim(ic.metadata.uid!);
  for (const t of taken) {
    if (reported.has(t.address)) continue;
    const rival = held.find((c) => c.spec.ipVersion === t.family && c.spec.address !== t.address && reported.has(c.spec.address));
    if (rival) {
      throw new IpamError(
        "try-again",
        `another ADD of IPAMClaim ${ic.metadata.namespace}/${ic.metadata.name} took ${rival.spec.address} at the same time; ${t.address} is given back`,
      );
    }
  }
}

/**
 * Puts the finalizer on each claim (crd.ts IPAMCLAIM_FINALIZER): from now on
 * a delete by a berth that does not know IPAMClaims (a 0.4 controller or
 * DEL) only marks the claim, and the address stays taken. Last step of the
 * ADD: until then its undo log may still delete a claim it created.
 */
export async function sealIpamClaimHold(s: Claiming, taken: Taken[]): Promise<void> {
  for (const t of taken) {
    const name = claimNameOf(t.address);
    for (let attempt = 0; ; attempt++) {
      const claim = await s.api.getClaim(name);
      if (!claim || claim.spec.ipamClaim?.uid !== s.holder.ipamClaim?.uid) {
        throw new IpamError("try-again", `claim ${name} of ${t.address} changed hands while this ADD ran`);
      }
      if (claim.metadata.finalizers?.includes(IPAMCLAIM_FINALIZER)) break;
      try {
        await s.api.updateClaim({ ...claim, metadata: { ...claim.metadata, finalizers: [...(claim.metadata.finalizers ?? []), IPAMCLAIM_FINALIZER] } });
        break;
      } catch (err) {
        if (!retriable(err) || attempt + 1 >= ATTEMPTS) throw err;
      }
    }
  }
}
