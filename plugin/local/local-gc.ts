/** CNI GC: release every lease of this network that the runtime no longer lists. */
import { openLeaseDb } from "../../store/open-lease-db.ts";
import type { CommandContext, CommandOutcome } from "../ipam/command.ts";
import { mayBeInFlight } from "../ipam/in-flight.ts";

export function localGc({ conf, log, openDriver }: CommandContext): CommandOutcome {
  if (conf.validAttachments === undefined) {
    // No list at all is not "nothing is valid": releasing every lease on a guess would cut running pods off.
    log.warn("GC without cni.dev/valid-attachments: nothing released", { network: conf.name });
    return {};
  }
  const store = openLeaseDb(conf.ipam, openDriver, { mustExist: true });
  if (!store) return {};
  try {
    const valid = new Set(conf.validAttachments.map((a) => `${a.containerID}\u0000${a.ifname}`));
    // A lease younger than an ADD's budget may belong to an ADD still running, which the runtime's
    // list cannot show yet: it waits for the next GC.
    const now = Date.now();
    const gone = store.immediate(() =>
      store.collectGarbage(conf.name, (cid, ifname, createdAt) => valid.has(`${cid}\u0000${ifname}`) || mayBeInFlight(createdAt, conf.ipam.timeoutMs, now)),
    );
    for (const l of gone) log.info("address released by GC", { address: l.address, pool: l.pool, container: l.container_id, ifname: l.ifname });
    return {};
  } finally {
    store.close();
  }
}
