/**
 * What the cluster section's reports share: where each phase's report puts
 * its figures (the JSON, the aims printed at the end, the targets), and the
 * figures of the local section of the same run.
 */

/** Filled by each phase's report, in the order the phases are reported. */
export interface Report {
  /** For BENCH_JSON's `cluster`. */
  json: Record<string, unknown>;
  /** Lines under "Cluster targets (reported, not asserted)". */
  aims: string[];
  /** BENCH_JSON's `cluster.targets`. */
  targets: Record<string, unknown>;
}

/** Figures of the local section of the same run (scripts/bench.ts), for ratios; absent when this section runs alone. */
export interface LocalFigures {
  /** berth's local-mode sequential ADD p50, ms. */
  addP50?: number;
  /** berth's local-mode CPU per sequential ADD (mean), ms. */
  addCpuMs?: number;
  /** berth's local-mode concurrent burst (BENCH_C ADDs, fresh dataDir), wall median, ms, and its size. */
  concWallMs?: number;
  concC?: number;
}

/** Two decimals, "-" for NaN. */
export const fmt = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(2));
