/**
 * CNI STATUS: can an ADD be served right now? Answered from reads alone:
 * runtimes ask every few seconds, and a write (with its fsync and the
 * database's write lock) each time would buy nothing an ADD does not find
 * out itself.
 */
import { leaseDbReady } from "../../store/lease-db-ready.ts";
import type { CommandContext, CommandOutcome } from "../ipam/command.ts";
import { defaultPools } from "../ipam/default-pools.ts";
import { IpamError } from "../ipam/ipam-error.ts";

export function localStatus({ conf, openDriver, log }: CommandContext): CommandOutcome {
  // No database yet (a node that never allocated): every pool is empty.
  const store = leaseDbReady(conf.ipam, openDriver);
  try {
    for (const { family, pools } of defaultPools(conf.ipam)) {
      const serving = pools.filter((p) => !p.disable);
      if (serving.length === 0) throw new IpamError("not-available", `no IPv${family} pool can serve: ${pools.map((p) => p.name).join(", ")} disabled`);
      const usage = serving.map((p) => ({ p, used: store?.bindings.poolUsage(conf.name, p.name) ?? 0 }));
      if (usage.every(({ p, used }) => BigInt(used) >= p.total)) {
        throw new IpamError(
          "not-available",
          `all IPv${family} pools exhausted: ${usage.map(({ p, used }) => `${p.name} (${used} of ${p.total} in use)`).join(", ")}`,
        );
      }
    }
    log.debug("ready", { database: store ? conf.ipam.dbPath : "absent (none allocated yet)" });
    return {};
  } finally {
    store?.close();
  }
}
