/** CNI STATUS: can an ADD be served right now? */
import { CniError, Code } from "../cni-error.ts";
import { compareVersions } from "../cni-version.ts";
import { assertWritable } from "../open-store.ts";
import { selectPools } from "../pool-selection.ts";
import type { CommandContext, CommandOutcome } from "./context.ts";

export function cmdStatus({ conf, openDriver }: CommandContext): CommandOutcome {
  if (compareVersions(conf.cniVersion, "1.1.0") < 0) {
    throw new CniError(Code.IncompatibleVersion, `config version ${conf.cniVersion} does not allow STATUS`, "STATUS needs cniVersion 1.1.0");
  }
  const store = assertWritable(conf.ipam, openDriver);
  try {
    for (const { family, pools } of selectPools(conf.ipam)) {
      const serving = pools.filter((p) => !p.disable);
      if (serving.length === 0) throw new CniError(Code.NotAvailable, `no IPv${family} pool can serve: ${pools.map((p) => p.name).join(", ")} disabled`);
      const usage = serving.map((p) => ({ p, used: store.poolUsage(conf.name, p.name) }));
      if (usage.every(({ p, used }) => BigInt(used) >= p.total)) {
        throw new CniError(Code.NotAvailable, `all IPv${family} pools exhausted: ${usage.map(({ p, used }) => `${p.name} (${used} of ${p.total} in use)`).join(", ")}`);
      }
    }
    return {};
  } finally {
    store.close();
  }
}
