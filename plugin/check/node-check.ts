/**
 * `berth check --node` and `--db`: a node's lease database on its own, and
 * (cluster mode, --node) against the claims for that node. Read-only.
 *
 * - database-corrupt: `PRAGMA integrity_check` finds damage;
 * - stale-pending-lease: a pending lease older than any ADD may run (its
 *   claim's recorded window, else 615 s: the longest `timeoutSeconds` 0.3
 *   allowed and its margin) — an ADD killed and never followed by its DEL;
 * - node-lease-mismatch: an active lease whose claim is gone or another
 *   container's; a claim for this node no lease records (cluster mode); a
 *   lease for an address a binding reserves for another pod (local mode).
 */

import type { LeaseStore } from "../../store/lease-store.ts";
import type { Lease } from "../../store/rows.ts";
import { leaseHoldsClaim } from "../cluster/stale-leases.ts";
import { parseAddress } from "../ipam/ip.ts";
import { claimName } from "../kube/claim-name.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { LEGACY_ADD_DEADLINE_SECONDS, lastWriteMs } from "../reconcile/claim-age.ts";
import { claimRef } from "./find-problems.ts";
import type { PoolFigures, Problem } from "./problem.ts";

/** PRAGMA integrity_check: a problem when it finds anything but "ok". */
export function integrity(store: LeaseStore, path: string): Problem[] {
  const rows = store.db.prepare<{ integrity_check: string }>("PRAGMA integrity_check").all();
  const found = rows.map((r) => r.integrity_check).filter((r) => r !== "ok");
  if (!found.length) return [];
  return [corrupt(path, `PRAGMA integrity_check on ${path}: ${found.slice(0, 5).join("; ")}${found.length > 5 ? ` (and ${found.length - 5} more)` : ""}`)];
}

/** SQLite's own verdicts on a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB), met before integrity_check could run. */
const DAMAGE = /^SQLITE_(CORRUPT|NOTADB)/;

/** A database-corrupt problem when `err` is SQLite saying the file is damaged; undefined for any other error. */
export function damaged(err: unknown, path: string): Problem | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string" || !DAMAGE.test(code)) return undefined;
  return corrupt(path, `${path}: ${(err as Error).message} (${code})`);
}

function corrupt(path: string, detail: string): Problem {
  return {
    kind: "database-corrupt",
    objects: [{ kind: "Database", name: path }],
    detail,
    action: "Stop the node's pods' churn, copy the database aside, and restore it from a backup or let berth start a new one (local mode loses its bindings).",
  };
}

const ageSeconds = (l: Lease, now: number) => Math.round((now - Date.parse(l.created_at)) / 1000);
const leaseRef = (l: Lease) => ({ kind: "Lease", name: `${l.network}/${l.address}`, namespace: l.pod_namespace ?? undefined });
const leasePod = (l: Lease) => (l.pod_namespace && l.pod_name ? [`${l.pod_namespace}/${l.pod_name}`] : undefined);

function stalePending(l: Lease, now: number, windowS: number): Problem | undefined {
  if (l.state !== "pending" || ageSeconds(l, now) <= windowS) return undefined;
  return {
    kind: "stale-pending-lease",
    address: l.address,
    pool: l.pool,
    ...(leasePod(l) ? { pods: leasePod(l) } : {}),
    objects: [leaseRef(l)],
    detail: `network ${l.network}: pending since ${l.created_at} (${ageSeconds(l, now)} s; an ADD may run ${windowS} s) for container ${l.container_id} ${l.ifname}`,
    action: "An ADD that was killed left it: the next ADD that finds no other address drops it; or run the runtime's CNI GC on this node.",
  };
}

/**
 * --node: this node's database against the claims that name this node (and
 * the claims of its leases). Claims of networks this database has no lease
 * of are not compared: a network with its own `dataDir` keeps another
 * database (give that one with --data-dir).
 */
export async function nodeProblems(store: LeaseStore, api: ControllerApi, node: string, pageSize: number): Promise<Problem[]> {
  const leases = store.listLeases();
  const claims: ClaimObject[] = [];
  await api.listAllClaims(pageSize, (page) => claims.push(...page));
  const byName = new Map(claims.map((c) => [c.metadata.name, c]));
  const claimOf = (address: string) => {
    const a = parseAddress(address);
    return a ? byName.get(claimName(a.family, a.value)) : undefined;
  };
  const now = api.serverNow();
  const problems: Problem[] = [];
  for (const l of leases) {
    const claim = claimOf(l.address);
    const window = claim?.spec.addDeadlineSeconds ?? LEGACY_ADD_DEADLINE_SECONDS;
    const stale = stalePending(l, Date.now(), window);
    if (stale) problems.push(stale);
    if (l.state !== "active" || (claim && leaseHoldsClaim(claim, l))) continue;
    problems.push({
      kind: "node-lease-mismatch",
      address: l.address,
      pool: l.pool,
      pods: [...(leasePod(l) ?? []), ...(claim ? [`${claim.spec.podNamespace}/${claim.spec.podName}`] : [])],
      objects: [leaseRef(l), ...(claim ? [claimRef(claim)] : [])],
      detail: `network ${l.network}: this node leases it to container ${l.container_id} ${l.ifname}, but ${claim ? `its claim names pod ${claim.spec.podNamespace}/${claim.spec.podName} container ${claim.spec.containerID}` : "its claim is gone"}`,
      action: "A sandbox gone without its DEL left it: the next ADD that finds no other address drops it; or run the runtime's CNI GC on this node.",
    });
  }
  const networks = new Set(leases.map((l) => l.network));
  const leased = new Set(leases.map((l) => l.address));
  for (const c of claims) {
    if (c.spec.node !== node || leased.has(c.spec.address)) continue;
    if (c.spec.network !== undefined && !networks.has(c.spec.network)) continue;
    // An ADD that created the claim a moment ago writes its lease first: one younger than its window may be in flight.
    const written = lastWriteMs(c);
    if (written === undefined || now - written < (c.spec.addDeadlineSeconds ?? LEGACY_ADD_DEADLINE_SECONDS) * 1000) continue;
    problems.push({
      kind: "node-lease-mismatch",
      address: c.spec.address,
      pool: c.spec.pool,
      pods: [`${c.spec.podNamespace}/${c.spec.podName}`],
      objects: [claimRef(c)],
      detail: `claim for node ${node} (container ${c.spec.containerID} ${c.spec.interface}), but this node's database leases it to nobody`,
      action:
        "The node's database lost it (restored, or another dataDir?): the pod's next DEL still frees the claim; compare with the pod's network namespace before acting.",
    });
  }
  return problems;
}

/** --db: a local-mode database on its own. */
export function localProblems(store: LeaseStore): Problem[] {
  const problems: Problem[] = [];
  for (const l of store.listLeases()) {
    const stale = stalePending(l, Date.now(), LEGACY_ADD_DEADLINE_SECONDS);
    if (stale) problems.push(stale);
  }
  for (const b of store.bindings.list()) {
    const lease = store.leaseAt(b.network, b.address);
    if (!lease || (lease.pod_namespace === b.pod_namespace && lease.pod_name === b.pod_name)) continue;
    problems.push({
      kind: "node-lease-mismatch",
      address: b.address,
      pool: b.pool,
      pods: [`${b.pod_namespace}/${b.pod_name}`, ...(leasePod(lease) ?? [])],
      objects: [leaseRef(lease), { kind: "Binding", name: `${b.network}/${b.pod_namespace}/${b.pod_name}/${b.ifname}` }],
      detail: `network ${b.network}: bound to StatefulSet pod ${b.pod_namespace}/${b.pod_name}, but leased to ${lease.pod_namespace}/${lease.pod_name} container ${lease.container_id}`,
      action: `Free the binding with berth release ${b.pod_namespace}/${b.pod_name} if that StatefulSet pod is gone for good; otherwise restart the other pod.`,
    });
  }
  return problems;
}

/** A local database's pools, as last configured: retained = reserved by a binding and leased to nobody. */
export function localPools(store: LeaseStore): PoolFigures[] {
  const leased = new Set(store.listLeases().map((l) => `${l.network} ${l.address}`));
  return store.bindings.listPools().map((p) => {
    const retained = store.bindings.list(p.network).filter((b) => b.pool === p.name && !leased.has(`${b.network} ${b.address}`)).length;
    // Excluded addresses are not recorded in a local database (its pools keep what they may hand out): absent.
    return { name: `${p.network}/${p.name}`, total: p.total, claimed: p.allocated, free: p.total - p.allocated, retained };
  });
}
