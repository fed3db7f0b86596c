/** CNI STATUS: can an ADD be served right now? */
import { assertWritable } from "../node-store/open-store.ts";
import { selectPools } from "./pool-selection.ts";
import type { CommandContext, CommandOutcome } from "../ipam/command.ts";
import { IpamError } from "../ipam/ipam-error.ts";

export function localStatus({ conf, openDriver }: CommandContext): CommandOutcome {
  const store = assertWritable(conf.ipam, openDriver);
  try {
    for (const { family, pools } of selectPools(conf.ipam)) {
      const serving = pools.filter((p) => !p.disable);
      if (serving.length === 0) throw new IpamError("not-available", `no IPv${family} pool can serve: ${pools.map((p) => p.name).join(", ")} disabled`);
      const usage = serving.map((p) => ({ p, used: store.bindings.poolUsage(conf.name, p.name) }));
      if (usage.every(({ p, used }) => BigInt(used) >= p.total)) {
        throw new IpamError(
          "not-available",
          `all IPv${family} pools exhausted: ${usage.map(({ p, used }) => `${p.name} (${used} of ${p.total} in use)`).join(", ")}`,
        );
      }
    }
    return {};
  } finally {
    store.close();
  }
}
