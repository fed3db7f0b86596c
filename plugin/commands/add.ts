/** CNI ADD: allocate (or return) this attachment's addresses. */
import { allocate } from "../allocator.ts";
import { formatResult } from "../cni-version.ts";
import { openStore, poolRecord } from "../open-store.ts";
import { looksLikeStatefulSetPod, podIdentity } from "../pod-identity.ts";
import { selectPools } from "../pool-selection.ts";
import { withPrefix } from "../pool.ts";
import type { CommandContext, CommandOutcome } from "./context.ts";

export function cmdAdd({ env, conf, log, openDriver }: CommandContext): CommandOutcome {
  const { ipam } = conf;
  const pod = podIdentity(env.args);
  const sticky = ipam.enableStatefulSet && pod !== undefined && looksLikeStatefulSetPod(pod.name);
  const families = selectPools(ipam);
  const store = openStore(ipam, openDriver)!;
  try {
    const allocations = store.immediate(() => {
      store.syncPools(conf.name, ipam.pools.map((p) => poolRecord(conf.name, p)));
      return allocate(store, { network: conf.name, containerId: env.containerId, ifname: env.ifname, pod, sticky, families, allPools: ipam.pools });
    });
    for (const a of allocations) {
      log.info("address assigned", {
        address: a.address, pool: a.pool.name, source: a.source, sticky, container: env.containerId, ifname: env.ifname,
        pod: pod && `${pod.namespace}/${pod.name}`, replaced: a.replacedContainer,
      });
    }
    const ips = allocations.map((a) => ({ family: a.family, address: withPrefix(a.pool, a.address), ...(a.pool.gateway ? { gateway: a.pool.gateway } : {}) }));
    const routes = allocations.flatMap((a) => a.pool.routes);
    const fresh = allocations.some((a) => a.source !== "existing");
    return {
      output: formatResult(conf.cniVersion, ips, routes),
      // Only what this ADD took is given back; a repeated ADD must not drop the earlier lease.
      rollback: fresh
        ? () => {
            const again = openStore(ipam, openDriver)!;
            try {
              again.immediate(() => again.releaseAttachment(conf.name, env.containerId, env.ifname));
            } finally {
              again.close();
            }
          }
        : undefined,
    };
  } finally {
    store.close();
  }
}
