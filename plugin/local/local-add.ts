/** CNI ADD: allocate (or return) this attachment's addresses. */

import { openLeaseDb } from "../../store/open-lease-db.ts";
import type { CommandContext, CommandOutcome } from "../ipam/command.ts";
import { defaultPools } from "../ipam/default-pools.ts";
import { looksLikeStatefulSetPod, podIdentity } from "../ipam/pod-identity.ts";
import { resultIp } from "../ipam/pool.ts";
import { allocate } from "./allocator.ts";
import { poolRecord } from "./pool-record.ts";

export function localAdd({ env, conf, log, openDriver }: CommandContext): CommandOutcome {
  const { ipam } = conf;
  const pod = podIdentity(env.args);
  const sticky = ipam.enableStatefulSet && pod !== undefined && looksLikeStatefulSetPod(pod.name);
  const families = defaultPools(ipam);
  const store = openLeaseDb(ipam, openDriver)!;
  try {
    const allocations = store.immediate(() => {
      store.bindings.syncPools(
        conf.name,
        ipam.pools.map((p) => poolRecord(conf.name, p)),
      );
      return allocate(store, { network: conf.name, containerId: env.containerId, ifname: env.ifname, pod, sticky, families, allPools: ipam.pools });
    });
    for (const a of allocations) {
      log.info("address assigned", {
        address: a.address,
        pool: a.pool.name,
        source: a.source,
        sticky,
        container: env.containerId,
        ifname: env.ifname,
        pod: pod && `${pod.namespace}/${pod.name}`,
        replaced: a.replacedContainer,
      });
    }
    const fresh = allocations.some((a) => a.source !== "existing");
    return {
      result: { ips: allocations.map((a) => resultIp(a.pool, a.address)), routes: allocations.flatMap((a) => a.pool.routes) },
      // Only what this ADD took is given back; a repeated ADD must not drop the earlier lease.
      rollback: fresh
        ? () => {
            const again = openLeaseDb(ipam, openDriver)!;
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
