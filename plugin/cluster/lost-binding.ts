/**
 * A StatefulSet member's binding when its BerthEndpoint is gone: deleted
 * with `kubectl delete bep`, or its CRD deleted and re-created, before the
 * controller wrote it back from the claims (it cannot while the kind is not
 * served, nor while no controller leads). The member's claims still name it:
 * the ADD finds them in its pools' claims, so a member re-created in that gap
 * comes back to its address instead of taking another and leaving its own to
 * be judged superseded.
 *
 * Only when the endpoint is missing altogether (a brand-new member's first
 * ADD too, which finds nothing), only in pools small enough to LIST on an
 * ADD's path (take-free.ts's LIST_FIRST_LIMIT), from the watch cache; the
 * LIST also refreshes the pool's hints, which the first allocation from a
 * small pool on this node would LIST for anyway. Exactly one claim per family
 * counts: with two (a killed ADD's beside the binding) which one the member
 * used cannot be told, and none is taken.
 */
import type { FamilyPools } from "../ipam/pool.ts";
import type { EndpointIp } from "../kube/kube-api.ts";
import type { AddState } from "./add-state.ts";
import { LIST_FIRST_LIMIT, refreshHints } from "./take-free.ts";

/** The member's kept binding on this interface, as an endpoint entry would give it, or undefined. */
export async function lostBinding(s: AddState, families: FamilyPools[], statefulSet: string): Promise<EndpointIp | undefined> {
  const { namespace, name } = s.pod;
  const entry: EndpointIp = { interface: s.ifname };
  let found = false;
  for (const { family, pools } of families) {
    const mine: { address: string; pool: string; podUID: string }[] = [];
    for (const pool of pools) {
      if (pool.total > LIST_FIRST_LIMIT) continue;
      s.deadline.check();
      for (const c of await refreshHints(s, pool)) {
        const x = c.spec;
        if (
          x.podNamespace === namespace &&
          x.podName === name &&
          x.interface === s.ifname &&
          x.statefulSet === statefulSet &&
          x.ipVersion === family &&
          !x.ipamClaim
        ) {
          mine.push({ address: x.address, pool: pool.name, podUID: x.podUID });
        }
      }
    }
    if (mine.length > 1) {
      s.log.warn("endpoint gone and several claims name this member: none is taken back", {
        pod: `${namespace}/${name}`,
        ifname: s.ifname,
        addresses: mine.map((m) => m.address).join(","),
      });
    }
    if (mine.length !== 1) continue;
    found = true;
    entry.podUID = mine[0].podUID;
    if (family === 4) Object.assign(entry, { ipv4: `${mine[0].address}/32`, ipv4Pool: mine[0].pool });
    else Object.assign(entry, { ipv6: `${mine[0].address}/128`, ipv6Pool: mine[0].pool });
  }
  if (found) s.log.info("endpoint gone: the member's binding found in its claims", { pod: `${namespace}/${name}`, ifname: s.ifname });
  return found ? entry : undefined;
}
