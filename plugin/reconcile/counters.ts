/**
 * What the shared judgements and repairs report as they act: the
 * controller's metrics count them (controller/metrics.ts); `berth check
 * --repair` lists them.
 */
export interface ReconcileCounters {
  /** A claim released, by its release reason. */
  released(reason: string): void;
  /** An endpoint repaired: an entry written back from its claim, or a phantom binding stripped. */
  repaired(action: "rebuild-entry" | "strip-phantom"): void;
  /** A pool's size and claims, as its status was (re)written. */
  pool(name: string, size: number, allocated: number): void;
  /** A pool that is gone. */
  forgetPool(name: string): void;
}
