/** The durable local record written before a claim is created. */
import type { Pool } from "../ipam/pool.ts";
import type { AddState } from "./add-state.ts";

/**
 * Records a pending lease for `address` before its claim exists, so that a
 * crash in between is found (and undone) by the next ADD, DEL or GC without
 * the network. Undefined when another attachment on this node holds the
 * address locally: taken, whatever the hints say.
 */
export function recordPending(state: AddState, pool: Pool, address: string): number | undefined {
  const { store, conf, pod } = state;
  try {
    return store.immediate(() =>
      store.addLease({
        network: conf.name,
        address,
        family: pool.family,
        pool: pool.name,
        container_id: state.containerId,
        ifname: state.ifname,
        pod_namespace: pod.namespace,
        pod_name: pod.name,
        pod_uid: pod.uid ?? null,
        state: "pending",
        prefix: pool.subnet.prefix,
        gateway: pool.gateway ?? null,
        routes: JSON.stringify(pool.routes),
      }),
    );
  } catch (err) {
    if (String((err as { code?: string }).code).startsWith("SQLITE_CONSTRAINT")) return undefined;
    throw err;
  }
}
