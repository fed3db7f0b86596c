/** The name of the one claim object an address can have, cluster-wide. */
import { type Family, formatAddressLong } from "../ipam/ip.ts";

/**
 * "v4-10-6-168-101", "v6-fd00-6-0-0-0-0-0-101": the address itself, so two
 * creates for one address collide (AlreadyExists) whatever pool or node they
 * come from. IPv6 is written uncompressed, so the name never starts or ends
 * with "-" and stays a valid object name.
 */
export function claimName(family: Family, value: bigint): string {
  return `v${family}-${formatAddressLong(family, value).replace(/[.:]/g, "-")}`;
}
