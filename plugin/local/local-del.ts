/** CNI DEL: release this attachment's leases. Idempotent; a StatefulSet pod's binding stays. */
import { openLeaseDb } from "../../store/open-lease-db.ts";
import type { CommandContext, CommandOutcome } from "../ipam/command.ts";
import { podIdentity } from "../ipam/pod-identity.ts";

export function localDel({ env, conf, log, openDriver }: CommandContext): CommandOutcome {
  const store = openLeaseDb(conf.ipam, openDriver, { mustExist: true });
  if (!store) return {}; // no database: nothing was ever allocated here
  try {
    const pod = podIdentity(env.args);
    const { released, unbound } = store.immediate(() => {
      const released = store.releaseAttachment(conf.name, env.containerId, env.ifname);
      // With stickiness off, a pod's old binding would only pin an address nobody will claim.
      const unbound =
        !conf.ipam.enableStatefulSet && pod
          ? store.bindings.list(conf.name).filter((b) => b.pod_namespace === pod.namespace && b.pod_name === pod.name && b.ifname === env.ifname)
          : [];
      for (const b of unbound) store.bindings.delete(b);
      return { released, unbound };
    });
    for (const l of released) {
      const kept = l.pod_namespace !== null && store.bindings.get(conf.name, l.pod_namespace, l.pod_name!, l.ifname, l.family);
      log.info(kept ? "address released, binding kept" : "address released", {
        address: l.address,
        pool: l.pool,
        container: l.container_id,
        ifname: l.ifname,
        pod: l.pod_name && `${l.pod_namespace}/${l.pod_name}`,
      });
    }
    for (const b of unbound) log.info("binding removed (enableStatefulSet is false)", { address: b.address, pod: `${b.pod_namespace}/${b.pod_name}` });
    if (released.length === 0) log.debug("nothing to release", { container: env.containerId, ifname: env.ifname });
    return {};
  } finally {
    store.close();
  }
}
