/**
 * Names berth shares with the API server: the custom resources it reads and
 * writes, their labels, annotations and finalizer. One place, so that the
 * plugin, the controller, the tests and the benchmarks cannot drift apart.
 */

/** Spiderpool's pools, used as they are. */
export const POOL_GROUP = "spiderpool.spidernet.io";
export const POOL_VERSION = "v2beta1";
export const POOL_PLURAL = "spiderippools";
export const POOL_KIND = "SpiderIPPool";

/** berth's own resources: one BerthIPClaim per address, one BerthEndpoint per pod. */
export const BERTH_GROUP = "ipam.berth.dev";
export const BERTH_API_VERSION = "v1alpha1";
export const CLAIM_PLURAL = "berthipclaims";
export const CLAIM_KIND = "BerthIPClaim";
export const ENDPOINT_PLURAL = "berthendpoints";
export const ENDPOINT_KIND = "BerthEndpoint";

/** REST paths of the collections (cluster-wide). */
export const POOLS_PATH = `/apis/${POOL_GROUP}/${POOL_VERSION}/${POOL_PLURAL}`;
export const CLAIMS_PATH = `/apis/${BERTH_GROUP}/${BERTH_API_VERSION}/${CLAIM_PLURAL}`;
export const ENDPOINTS_PATH = `/apis/${BERTH_GROUP}/${BERTH_API_VERSION}/${ENDPOINT_PLURAL}`;

/** Claim label naming its pool (cut to 63 characters, see `labelValue`). */
export const POOL_LABEL = "ipam.berth.dev/pool";
/** Pool finalizer: a deleting pool goes only once no claim counts against it. */
export const POOL_FINALIZER = "ipam.berth.dev/pool-in-use";
/** StatefulSet (or template) annotation: `Retain` keeps scaled-down bindings until the set is deleted. */
export const RECLAIM_ANNOTATION = "ipam.berth.dev/reclaim";
/** Pod (template) annotation: StatefulSet pod N gets the Nth address of its pools. */
export const ORDINAL_IPS_ANNOTATION = "ipam.berth.dev/ordinal-ips";

/** Pool names are up to 253 characters, label values 63: long ones are cut (selectors compare the same cut). */
export function labelValue(pool: string): string {
  return pool.length <= 63 ? pool : pool.slice(0, 63).replace(/[^a-z0-9]+$/, "");
}

/** Claim and endpoint label set by `berth adopt`: the IPAM the record was taken over from ("whereabouts", "spiderpool"). */
export const ADOPTED_FROM_LABEL = "ipam.berth.dev/adopted-from";
