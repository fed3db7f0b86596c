/** The controller's Prometheus metrics, rendered in the text exposition format. */
import { type PoolFigures, PROBLEM_KINDS, type Problem } from "../check/problem.ts";
import { HELD_KINDS } from "../reconcile/judge-claim.ts";

export class Metrics {
  leader = false;
  allocations = 0;
  private releases = new Map<string, number>();
  private pools = new Map<string, { size: number; allocated: number }>();
  reconcileSeconds = { sum: 0, count: 0, last: 0 };
  claims = 0;
  private listRequests = new Map<string, number>();
  private listFailures = new Map<string, number>();
  private repairs = new Map<string, number>();
  /** Addresses held in doubt at the last full scan, by kind (judge-claim.ts HeldKind). */
  held = new Map<string, number>();
  /** The last periodic check: problems by kind, each pool's figures, its duration; undefined before the first. */
  private check?: { problems: Map<string, number>; pools: PoolFigures[]; seconds: number };

  /** A periodic check ran (periodic-check.ts). */
  checked(problems: Problem[], pools: PoolFigures[], seconds: number): void {
    const byKind = new Map<string, number>();
    for (const p of problems) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
    this.check = { problems: byKind, pools, seconds };
  }

  /** A full scan LISTed `kind` in `requests` pages, or (requests undefined) failed to. */
  listed(kind: string, requests: number | undefined): void {
    if (requests === undefined) this.listFailures.set(kind, (this.listFailures.get(kind) ?? 0) + 1);
    else this.listRequests.set(kind, (this.listRequests.get(kind) ?? 0) + requests);
  }

  /** An endpoint repaired: an entry rebuilt from its claim, or a phantom binding stripped. */
  repaired(action: "rebuild-entry" | "strip-phantom"): void {
    this.repairs.set(action, (this.repairs.get(action) ?? 0) + 1);
  }

  released(reason: string): void {
    this.releases.set(reason, (this.releases.get(reason) ?? 0) + 1);
  }

  pool(name: string, size: number, allocated: number): void {
    this.pools.set(name, { size, allocated });
  }

  forgetPool(name: string): void {
    this.pools.delete(name);
  }

  /** The periodic check's series: none before its first run, then every kind (zeros included) and every pool. */
  private renderCheck(esc: (v: string) => string): string[] {
    if (!this.check) return [];
    const { problems, pools, seconds } = this.check;
    const states = ["total", "claimed", "free", "retained", "excluded"] as const;
    return [
      "# HELP berth_check_problems Problems the last periodic check found (the kinds of berth check), by kind.",
      "# TYPE berth_check_problems gauge",
      ...PROBLEM_KINDS.map((k) => `berth_check_problems{kind="${k}"} ${problems.get(k) ?? 0}`),
      "# HELP berth_check_duration_seconds How long the last periodic check took.",
      "# TYPE berth_check_duration_seconds gauge",
      `berth_check_duration_seconds ${seconds}`,
      "# HELP berth_pool_addresses A pool's addresses at the last periodic check, by state (as berth check reports them).",
      "# TYPE berth_pool_addresses gauge",
      ...pools.flatMap((p) => states.filter((st) => p[st] !== undefined).map((st) => `berth_pool_addresses{pool="${esc(p.name)}",state="${st}"} ${p[st]}`)),
    ];
  }

  reconciled(seconds: number): void {
    this.reconcileSeconds.sum += seconds;
    this.reconcileSeconds.count += 1;
    this.reconcileSeconds.last = seconds;
  }

  render(): string {
    const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    const lines = [
      "# HELP berth_controller_leader 1 when this replica holds the leader lease.",
      "# TYPE berth_controller_leader gauge",
      `berth_controller_leader ${this.leader ? 1 : 0}`,
      "# HELP berth_allocations_total Addresses claimed (BerthIPClaims created) since this replica started watching.",
      "# TYPE berth_allocations_total counter",
      `berth_allocations_total ${this.allocations}`,
      "# HELP berth_releases_total Addresses the controller released, by reason.",
      "# TYPE berth_releases_total counter",
      ...[...this.releases].map(([r, n]) => `berth_releases_total{reason="${esc(r)}"} ${n}`),
      "# HELP berth_addresses_held Addresses the controller holds although it cannot tell that their pod still uses them (at the last full scan), by why.",
      "# TYPE berth_addresses_held gauge",
      // Every kind, zeros included, so that an alert sees the series before it fires.
      ...HELD_KINDS.map((k) => `berth_addresses_held{reason="${k}"} ${this.held.get(k) ?? 0}`),
      "# HELP berth_endpoint_repairs_total BerthEndpoint repairs: entries rebuilt from their claims, phantom bindings stripped.",
      "# TYPE berth_endpoint_repairs_total counter",
      ...[...this.repairs].map(([a, n]) => `berth_endpoint_repairs_total{action="${esc(a)}"} ${n}`),
      ...this.renderCheck(esc),
      "# HELP berth_claims Addresses claimed cluster-wide, as last seen.",
      "# TYPE berth_claims gauge",
      `berth_claims ${this.claims}`,
      "# HELP berth_pool_size Addresses a pool can hand out.",
      "# TYPE berth_pool_size gauge",
      ...[...this.pools].map(([p, v]) => `berth_pool_size{pool="${esc(p)}"} ${v.size}`),
      "# HELP berth_pool_allocated Addresses of a pool that are claimed.",
      "# TYPE berth_pool_allocated gauge",
      ...[...this.pools].map(([p, v]) => `berth_pool_allocated{pool="${esc(p)}"} ${v.allocated}`),
      "# HELP berth_list_requests_total LIST requests (pages) of full scans, by kind.",
      "# TYPE berth_list_requests_total counter",
      ...[...this.listRequests].map(([k, n]) => `berth_list_requests_total{kind="${esc(k)}"} ${n}`),
      "# HELP berth_list_failures_total Full scans whose LIST of a kind failed (the claims needing it were left for the next scan).",
      "# TYPE berth_list_failures_total counter",
      ...[...this.listFailures].map(([k, n]) => `berth_list_failures_total{kind="${esc(k)}"} ${n}`),
      "# HELP berth_reconcile_duration_seconds Time of a full reconcile pass.",
      "# TYPE berth_reconcile_duration_seconds summary",
      `berth_reconcile_duration_seconds_sum ${this.reconcileSeconds.sum}`,
      `berth_reconcile_duration_seconds_count ${this.reconcileSeconds.count}`,
      "# HELP berth_reconcile_last_duration_seconds Time of the last full reconcile pass.",
      "# TYPE berth_reconcile_last_duration_seconds gauge",
      `berth_reconcile_last_duration_seconds ${this.reconcileSeconds.last}`,
    ];
    return `${lines.join("\n")}\n`;
  }
}
