/**
 * An ADD whose network-selection element names an IPAMClaim (multi-network
 * spec v1.3, KubeVirt's persistent VM addresses): the addresses belong to the
 * IPAMClaim, held by its UID, not to the pod. The first ADD takes them by the
 * usual pool choice; every later ADD of any pod naming the same IPAMClaim
 * (a restarted VM's new virt-launcher pod, a live migration's target while
 * the source still runs) takes the same ones over: the claim's pod fields
 * move to the pod that took it last. No endpoint is written: the binding is
 * the IPAMClaim's, found again through the claims' UID label.
 */

import { IpamError } from "../ipam/ipam-error.ts";
import { ipamClaimReference } from "../ipam/multus-network.ts";
import type { FamilyPools } from "../ipam/pool.ts";
import { poolContains } from "../ipam/pool.ts";
import type { ClaimObject, IpamClaimObject, PodObject } from "../kube/kube-api.ts";
import type { AddState, Claiming, Taken } from "./add-state.ts";
import { sealIpamClaimHold, writeIpamClaimStatus } from "./ipamclaim-status.ts";
import { retakeBound } from "./take-bound.ts";
import { takeFree } from "./take-free.ts";

/**
 * The IPAMClaim this ADD's element names, checked against the network and
 * interface; undefined when the element names none. A missing IPAMClaim is
 * an error naming it: berth never creates one (the VM's owner does).
 */
export async function ipamClaimOf(s: AddState, pod: PodObject): Promise<IpamClaimObject | undefined> {
  const ns = s.pod.namespace;
  let ref: string | undefined;
  try {
    ref = ipamClaimReference(pod.metadata.annotations ?? {}, ns, s.ifname);
  } catch (err) {
    throw new IpamError("bad-annotation", `pod ${ns}/${s.pod.name}: ${(err as Error).message}`);
  }
  if (!ref) return undefined;
  const ic = await s.api.getIpamClaim(ns, ref);
  if (!ic) {
    throw new IpamError(
      "not-found",
      `IPAMClaim ${ns}/${ref}, named by pod ${ns}/${s.pod.name}'s ipam-claim-reference for interface ${s.ifname}, does not exist on API server ${s.api.server} (or the IPAMClaim CRD is not installed); berth never creates one: the VM's owner (KubeVirt's ipam-extensions, or you) does`,
    );
  }
  const { network, interface: iface } = ic.spec ?? {};
  if (network !== s.conf.name || iface !== s.ifname) {
    throw new IpamError(
      "bad-annotation",
      `IPAMClaim ${ns}/${ref} is for network ${JSON.stringify(network)} interface ${JSON.stringify(iface)}, but pod ${ns}/${s.pod.name} names it for network ${JSON.stringify(s.conf.name)} interface ${JSON.stringify(s.ifname)}`,
    );
  }
  return ic;
}

/**
 * Takes the IPAMClaim's addresses for this pod (or, the first time, free
 * ones), writes the IPAMClaim's status, and seals the claims against
 * releases that do not know IPAMClaims. `s.holder.ipamClaim` names it.
 */
export async function takeForIpamClaim(s: Claiming, ic: IpamClaimObject, families: FamilyPools[]): Promise<Taken[]> {
  // A consistent read: a claim another ADD of this IPAMClaim made a moment ago is seen, so it is never taken twice.
  const held = await s.api.listClaimsOfIpamClaim(ic.metadata.uid!);
  const taken: Taken[] = [];
  for (const { family, pools } of families) {
    s.deadline.check();
    taken.push(await takeOne(s, ic, family, pools, held));
  }
  s.deadline.commit();
  await writeIpamClaimStatus(s, ic, taken);
  await sealIpamClaimHold(s, taken);
  return taken;
}

async function takeOne(s: Claiming, ic: IpamClaimObject, family: 4 | 6, pools: FamilyPools["pools"], held: ClaimObject[]): Promise<Taken> {
  const where = `IPAMClaim ${ic.metadata.namespace}/${ic.metadata.name}`;
  const reported = new Set((ic.status?.ips ?? []).map((ip) => ip.split("/")[0]));
  // The one the status reports first, should a lost race have left two (the loser gives its own back).
  const mine = held.filter((c) => c.spec.ipVersion === family).sort((a, b) => Number(reported.has(b.spec.address)) - Number(reported.has(a.spec.address)));
  for (const claim of mine) {
    const pool = pools.find((p) => p.name === claim.spec.pool && poolContains(p, claim.spec.address));
    if (!pool) {
      throw new IpamError(
        "no-pool",
        `${where} holds ${claim.spec.address} of pool ${claim.spec.pool}, which is not among the pools pod ${s.holder.namespace}/${s.holder.name} may use on this network (${pools.map((p) => p.name).join(", ")})`,
      );
    }
    // Insisting: the claim is the IPAMClaim's; anything else holding it is a conflict to report, never a reason to move.
    return (await retakeBound(s, pool, claim.spec.address, true))!;
  }
  // No claim: an address the status reports, whose claim a failed ADD gave back, is taken again if still free.
  for (const address of reported) {
    const pool = pools.find((p) => p.family === family && poolContains(p, address));
    if (!pool) continue;
    const again = await retakeBound(s, pool, address, false);
    if (again) return again;
  }
  return takeFree(s, family, pools);
}
