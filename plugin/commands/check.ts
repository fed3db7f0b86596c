/** CNI CHECK: every address of prevResult must still be leased to this attachment. */
import { CniError, Code } from "../cni-error.ts";
import { compareVersions } from "../cni-version.ts";
import { normalizeAddress } from "../ip.ts";
import { openStore } from "../open-store.ts";
import type { CommandContext, CommandOutcome } from "./context.ts";

export function cmdCheck({ env, conf, openDriver }: CommandContext): CommandOutcome {
  if (compareVersions(conf.cniVersion, "0.4.0") < 0) {
    throw new CniError(Code.IncompatibleVersion, `config version ${conf.cniVersion} does not allow CHECK`, "CHECK needs cniVersion 0.4.0 or later");
  }
  if (conf.prevIps === undefined) throw new CniError(Code.InvalidConfig, "invalid prevResult: missing (required for CHECK)");
  const store = openStore(conf.ipam, openDriver, true);
  const held = new Set((store?.leasesOf(conf.name, env.containerId, env.ifname) ?? []).map((l) => l.address));
  store?.close();
  for (const cidr of conf.prevIps) {
    const address = normalizeAddress(cidr.split("/")[0]);
    if (address === undefined) throw new CniError(Code.InvalidConfig, `invalid prevResult address ${JSON.stringify(cidr)}`);
    if (!held.has(address)) {
      throw new CniError(
        Code.LeaseMissing,
        `lease for ${address} is gone: container ${env.containerId} interface ${env.ifname} holds ${held.size ? [...held].join(", ") : "no address"} in network ${conf.name}`,
      );
    }
  }
  return {};
}
