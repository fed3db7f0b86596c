/**
 * What `berth check` reports: problems of named kinds, and each pool's
 * figures. The kinds and the field names are an interface that scripts and
 * alerts read: keep them as they are (docs/troubleshooting.md lists them).
 */
import { parseAddress } from "../ipam/ip.ts";

/** Every kind of problem, in the order the report sorts them. */
export const PROBLEM_KINDS = [
  "duplicate-address",
  "orphan-claim",
  "missing-claim",
  "phantom-binding",
  "outside-pool",
  "count-drift",
  "node-lease-mismatch",
  "stale-pending-lease",
  "database-corrupt",
] as const;

export type ProblemKind = (typeof PROBLEM_KINDS)[number];

/** An object a problem was judged on, with the version it was judged on. */
export interface ObjectRef {
  kind: string;
  name: string;
  namespace?: string;
  resourceVersion?: string;
}

/** One problem. Fields that do not apply are absent, never null. */
export interface Problem {
  kind: ProblemKind;
  address?: string;
  pool?: string;
  /** "namespace/name" of the pods involved. */
  pods?: string[];
  objects?: ObjectRef[];
  detail: string;
  /** One sentence: what an operator should do. */
  action: string;
  /** orphan-claim: the claim's age, in seconds since its last write (by the API server's stamps). */
  age?: number;
  /** orphan-claim: the rule that proves its holder gone (the controller's release reason). */
  rule?: string;
  /** With --repair: what was done about it (with --dry-run: what would be). */
  repair?: string;
  /** With --repair: whether it is fixed now. */
  repaired?: boolean;
}

/** A pool's figures. */
export interface PoolFigures {
  name: string;
  /** Its `ips` less its `excludeIPs` and gateway: what it may hand out (TOTAL-IP-COUNT). */
  total: number;
  /** Claims naming the pool. */
  claimed: number;
  /** total − claimed. */
  free: number;
  /** Claims kept by `ipam.berth.dev/reclaim: Retain` for StatefulSet pods that are gone (⊆ claimed). */
  retained: number;
  /** Addresses inside its `ips` that it never hands out (excludeIPs, gateway); absent for a local-mode database, which does not record them. */
  excluded?: number;
}

/** The whole report: `-o json` prints it as it is. */
export interface CheckReport {
  problems: Problem[];
  pools: PoolFigures[];
}

/** Problems sorted by kind (in PROBLEM_KINDS' order), then by address. */
export function sortProblems(problems: Problem[]): Problem[] {
  const rank = (k: ProblemKind) => PROBLEM_KINDS.indexOf(k);
  return [...problems].sort((a, b) => rank(a.kind) - rank(b.kind) || compareAddresses(a.address, b.address) || a.detail.localeCompare(b.detail));
}

/** Addresses in numeric order (IPv4 before IPv6); absent ones last. */
function compareAddresses(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  const [x, y] = [parseAddress(a), parseAddress(b)];
  if (!x || !y) return a.localeCompare(b);
  return x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : 0);
}
