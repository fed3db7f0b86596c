/**
 * The CNI commands in cluster mode. Loaded with a dynamic import only when the
 * ipam block names a kubeconfig, so local mode never loads the Kubernetes client.
 */

import { leaseDbReady } from "../../store/lease-db-ready.ts";
import { BUSY_TIMEOUT_MS, isBusy } from "../../store/lease-store.ts";
import { openLeaseDb } from "../../store/open-lease-db.ts";
import type { CommandContext, CommandOutcome, CommandTable } from "../ipam/command.ts";
import type { IpamConfig } from "../ipam/config.ts";
import { mayBeInFlight } from "../ipam/in-flight.ts";
import { normalizeAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import { podIdentity } from "../ipam/pod-identity.ts";
import type { KubeApi } from "../kube/kube-api.ts";
import { createKubeClient } from "../kube/kube-client.ts";
import { KubeUnreachableError } from "../kube/kube-errors.ts";
import { readKubeconfig } from "../kube/kubeconfig-reader.ts";
import { isKind } from "../support/errors.ts";
import { claimNameOf } from "./claims.ts";
import { claimDeadlineSeconds, clusterAdd, heldResult } from "./cluster-add.ts";
import { clusterRelease } from "./cluster-release.ts";
import { Deadline } from "./deadline.ts";

/**
 * A KubeApi for the ipam block's kubeconfig (CNI error 7 naming the field if
 * it cannot be read). With a `deadline`, no request outlasts what is left of it.
 */
export async function connect(ipam: IpamConfig, deadline?: Deadline): Promise<KubeApi> {
  try {
    // Each request gets at most 10 s (or the whole ADD budget, if smaller): one slow call must not eat it all.
    return await createKubeClient(ipam.kubeconfig!, {
      requestTimeoutMs: Math.min(ipam.timeoutMs, 10_000),
      ...(deadline ? { timeLeft: () => deadline.leftMs() } : {}),
    });
  } catch (err) {
    throw new IpamError("invalid-config", `invalid ipam.kubeconfig ${JSON.stringify(ipam.kubeconfig)}: ${(err as Error).message}`, "", { cause: err });
  }
}

function requirePod(ctx: CommandContext) {
  const pod = podIdentity(ctx.env.args);
  if (!pod) throw new IpamError("invalid-env", "CNI_ARGS lacks K8S_POD_NAMESPACE / K8S_POD_NAME: cluster mode needs to know the pod");
  return pod;
}

async function add(ctx: CommandContext): Promise<CommandOutcome> {
  const { env, conf, log } = ctx;
  const pod = requirePod(ctx);
  const store = openLeaseDb(conf.ipam, ctx.openDriver)!;
  try {
    // A repeated ADD of an attachment that completed is answered from the node database.
    const held = heldResult(store.leasesOf(conf.name, env.containerId, env.ifname));
    if (held) return { result: held };
    const api = await connect(conf.ipam);
    const result = await clusterAdd({ conf, containerId: env.containerId, ifname: env.ifname, pod, api, store, log });
    return {
      result,
      // The result could not be delivered: give back what this ADD took, binding included.
      rollback: async () => {
        const again = openLeaseDb(conf.ipam, ctx.openDriver)!;
        try {
          await clusterRelease(
            api,
            again,
            { ...conf.ipam, enableStatefulSet: false },
            { network: conf.name, containerId: env.containerId, ifname: env.ifname, pod },
            log,
          );
        } finally {
          again.close();
        }
      },
    };
  } finally {
    store.close();
  }
}

/**
 * Runs a DEL or GC within the network's timeoutSeconds, as the ADD is: each
 * request gets at most 10 s and never more than what is left, each wait for
 * the database lock too, and once the budget is spent it fails with code 11
 * (the runtime retries) instead of several 10 s requests plus a 30 s lock wait.
 *
 * A release cut off anywhere leaves a state its retry finishes (cluster-release.ts order):
 * - before its first claim delete: nothing changed;
 * - between claim deletes: the deleted ones are "already released" to the retry;
 * - after the claims, before the endpoint entry is dropped: the entry names
 *   released addresses until the retry drops it (as after an endpoint write
 *   the API server refused);
 * - before the local commit (the lock stayed taken): the leases stay, keeping
 *   this node's ADDs off the addresses, until the retry finds them released
 *   and drops them in one commit. A DEL never deletes a lease before its claim.
 */
async function withinBudget<T>(command: string, deadline: Deadline, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const ranOut = (isKind(err, KubeUnreachableError) && err.outOfTime) || (isBusy(err) && deadline.leftMs() === 0);
    if (ranOut) throw deadline.spent(command, err);
    throw err;
  }
}

/** The store's wait for the lock, bounded by what is left of `deadline`. */
const waitWithin = (deadline: Deadline) => () => Math.min(BUSY_TIMEOUT_MS, deadline.leftMs());

/** DEL, bounded by timeoutSeconds (withinBudget). */
async function del(ctx: CommandContext): Promise<CommandOutcome> {
  const deadline = new Deadline(ctx.conf.ipam.timeoutMs);
  return withinBudget("DEL", deadline, () => release(ctx, deadline));
}

/**
 * DEL must never block a sandbox's teardown on the network: with nothing held
 * on this node it succeeds without reading the kubeconfig or calling the API
 * server (a pod deleted meanwhile is the controller's to clean up). With
 * something held and the API server unreachable (or no kubeconfig yet) it is
 * code 11, and the runtime retries.
 */
async function release(ctx: CommandContext, deadline: Deadline): Promise<CommandOutcome> {
  const { env, conf, log } = ctx;
  const store = openLeaseDb(conf.ipam, ctx.openDriver, { mustExist: true, busyWait: waitWithin(deadline) });
  if (!store) return {};
  try {
    if (store.leasesOf(conf.name, env.containerId, env.ifname).length === 0) {
      log.debug("nothing held on this node", { container: env.containerId, ifname: env.ifname });
      return {};
    }
    const pod = podIdentity(ctx.env.args);
    let api: KubeApi;
    try {
      api = await connect(conf.ipam, deadline);
    } catch (err) {
      throw new IpamError("try-again", `cannot release container ${env.containerId}'s addresses yet: ${(err as Error).message}`, "", { cause: err });
    }
    await clusterRelease(api, store, conf.ipam, { network: conf.name, containerId: env.containerId, ifname: env.ifname, ...(pod ? { pod } : {}) }, log);
    return {};
  } finally {
    store.close();
  }
}

async function check(ctx: CommandContext): Promise<CommandOutcome> {
  const { env, conf } = ctx;
  const store = openLeaseDb(conf.ipam, ctx.openDriver, { mustExist: true });
  const leases = store?.leasesOf(conf.name, env.containerId, env.ifname) ?? [];
  store?.close();
  const api = await connect(conf.ipam);
  for (const cidr of conf.prevIps ?? []) {
    const address = normalizeAddress(cidr.split("/")[0]);
    if (!address) throw new IpamError("invalid-config", `invalid prevResult address ${JSON.stringify(cidr)}`);
    const lease = leases.find((l) => l.address === address && l.state === "active");
    if (!lease)
      throw new IpamError(
        "lease-missing",
        `lease for ${address} is gone: container ${env.containerId} interface ${env.ifname} holds no such address on this node`,
      );
    const claim = await api.getClaim(claimNameOf(address));
    if (!claim || claim.spec.podNamespace !== lease.pod_namespace || claim.spec.podName !== lease.pod_name) {
      throw new IpamError(
        "lease-missing",
        `lease for ${address} is gone: its BerthIPClaim ${claimNameOf(address)} ${claim ? `is held by pod ${claim.spec.podNamespace}/${claim.spec.podName}` : "no longer exists"} on API server ${api.server}`,
      );
    }
  }
  return {};
}

async function gc(ctx: CommandContext): Promise<CommandOutcome> {
  const { conf, log } = ctx;
  if (conf.validAttachments === undefined) {
    log.warn("GC without cni.dev/valid-attachments: nothing released", { network: conf.name });
    return {};
  }
  const deadline = new Deadline(conf.ipam.timeoutMs);
  return withinBudget("GC", deadline, () => collect(ctx, deadline));
}

/** GC's work, within `deadline`: attachments released before it runs out stay released. */
async function collect(ctx: CommandContext, deadline: Deadline): Promise<CommandOutcome> {
  const { conf, log } = ctx;
  const validAttachments = conf.validAttachments ?? [];
  const store = openLeaseDb(conf.ipam, ctx.openDriver, { mustExist: true, busyWait: waitWithin(deadline) });
  if (!store) return {};
  try {
    const valid = new Set(validAttachments.map((a) => `${a.containerID}\u0000${a.ifname}`));
    const stale = new Map<string, { containerId: string; ifname: string }>();
    // A lease younger than its ADD's deadline may belong to an ADD still running, which the
    // runtime's list cannot show yet (and whose claim the controller also leaves alone until then).
    const window = claimDeadlineSeconds(conf.ipam.timeoutMs) * 1000;
    const now = Date.now();
    for (const l of store.listLeases(conf.name)) {
      const key = `${l.container_id}\u0000${l.ifname}`;
      if (!valid.has(key) && !mayBeInFlight(l.created_at, window, now)) stale.set(key, { containerId: l.container_id, ifname: l.ifname });
    }
    // Every lease of a stale attachment goes together; one still young keeps them all.
    for (const l of store.listLeases(conf.name)) {
      if (mayBeInFlight(l.created_at, window, now)) stale.delete(`${l.container_id}\u0000${l.ifname}`);
    }
    if (stale.size === 0) return {};
    const api = await connect(conf.ipam, deadline);
    for (const a of stale.values()) await clusterRelease(api, store, conf.ipam, { network: conf.name, ...a }, log);
    return {};
  } finally {
    store.close();
  }
}

/**
 * STATUS answers from what this node can check by itself: the configuration
 * (validated before any command runs), the node database (readable, or a
 * directory an ADD can create it in) and the kubeconfig (present, readable,
 * parseable, its certificate and token files too). It sends no request: a
 * runtime asks every few seconds and turns a failure into NetworkReady=false,
 * which takes the node out and, after five minutes, evicts its pods; an API
 * server that is briefly away, or a token being rotated, must not do that to
 * every node at once. An ADD meets an unreachable API server itself (code 11).
 */
async function status(ctx: CommandContext): Promise<CommandOutcome> {
  const { conf, log } = ctx;
  const store = leaseDbReady(conf.ipam, ctx.openDriver);
  store?.close();
  try {
    readKubeconfig(conf.ipam.kubeconfig);
  } catch (err) {
    throw new IpamError("not-available", `ipam.kubeconfig ${JSON.stringify(conf.ipam.kubeconfig)} unusable: ${(err as Error).message}`, "", { cause: err });
  }
  log.debug("ready", { database: store ? conf.ipam.dbPath : "absent (none allocated yet)", kubeconfig: conf.ipam.kubeconfig });
  return {};
}

export const clusterCommands: CommandTable = { ADD: add, DEL: del, CHECK: check, GC: gc, STATUS: status };
