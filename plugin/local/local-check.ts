/** CNI CHECK: every address of prevResult must still be leased to this attachment. */

import { openLeaseDb } from "../../store/open-lease-db.ts";
import type { CommandContext, CommandOutcome } from "../ipam/command.ts";
import { normalizeAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";

export function localCheck({ env, conf, openDriver }: CommandContext): CommandOutcome {
  const store = openLeaseDb(conf.ipam, openDriver, { mustExist: true });
  const held = new Set((store?.leasesOf(conf.name, env.containerId, env.ifname) ?? []).map((l) => l.address));
  store?.close();
  for (const cidr of conf.prevIps ?? []) {
    const address = normalizeAddress(cidr.split("/")[0]);
    if (address === undefined) throw new IpamError("invalid-config", `invalid prevResult address ${JSON.stringify(cidr)}`);
    if (!held.has(address)) {
      throw new IpamError(
        "lease-missing",
        `lease for ${address} is gone: container ${env.containerId} interface ${env.ifname} holds ${held.size ? [...held].join(", ") : "no address"} in network ${conf.name}`,
      );
    }
  }
  return {};
}
