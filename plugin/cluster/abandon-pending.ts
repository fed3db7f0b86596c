/** Recovery from an ADD that was killed or timed out half-way. */
import type { LeaseStore } from "../../store/lease-store.ts";
import type { KubeApi } from "../kube/kube-api.ts";
import type { Logger } from "../support/logger.ts";
import { heldBy, releaseClaimIf } from "./claims.ts";

/**
 * Undoes what an interrupted ADD of this attachment left: pending leases and
 * the claims they were about to take (if this container holds them).
 */
export async function abandonPending(api: KubeApi, store: LeaseStore, network: string, containerId: string, ifname: string, log: Logger): Promise<void> {
  const stale = store.leasesOf(network, containerId, ifname).filter((l) => l.state === "pending");
  if (stale.length === 0) return;
  const first = stale[0];
  // An address the pod's endpoint lists is its binding (a StatefulSet member being re-taken): keep that claim.
  const ep = first.pod_namespace && first.pod_name ? await api.getEndpoint(first.pod_namespace, first.pod_name) : undefined;
  const bound = new Set(
    (ep?.spec.ips ?? [])
      .flatMap((i) => [i.ipv4, i.ipv6])
      .filter((c): c is string => !!c)
      .map((c) => c.split("/")[0]),
  );
  for (const l of stale) {
    const freed = bound.has(l.address)
      ? undefined
      : await releaseClaimIf(
          api,
          l.address,
          (c) => heldBy(c, l.pod_namespace ?? "", l.pod_name ?? "", containerId, undefined) && c.spec.containerID === containerId,
        );
    store.immediate(() => {
      store.deleteLease(l.id);
      if (freed) store.hints.set(l.pool, l.address, false);
    });
    log.info("undid an interrupted ADD", { address: l.address, pool: l.pool, container: containerId, claimDeleted: !!freed });
  }
}
