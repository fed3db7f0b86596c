/**
 * The controller runs `berth check`'s cluster checks itself every
 * --check-interval-seconds (after a full scan, never beside one: a check
 * lists as much as a scan does, and the two together would double the
 * controller's memory peak), so an alert can fire before anyone runs the
 * command: `berth_check_problems{kind}` and the per-pool
 * `berth_pool_addresses{pool,state}`. It reports; it never repairs.
 */
import { CONTROLLER_LEASE } from "../check/check-main.ts";
import { gatherFacts } from "../check/cluster-facts.ts";
import { confirmAll } from "../check/confirm.ts";
import { findProblems } from "../check/find-problems.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import { collectGarbage } from "../support/collect-garbage.ts";
import type { Logger } from "../support/logger.ts";
import type { Metrics } from "./metrics.ts";

export async function periodicCheck(api: ControllerApi, pageSize: number, addTimeoutMs: number, metrics: Metrics, log: Logger): Promise<void> {
  const t0 = performance.now();
  const facts = await gatherFacts(api, pageSize, CONTROLLER_LEASE);
  const found = await findProblems(facts, addTimeoutMs);
  const problems = await confirmAll(api, facts, found.problems, addTimeoutMs);
  collectGarbage();
  metrics.checked(problems, found.pools, (performance.now() - t0) / 1000);
  const counts: Record<string, number> = {};
  for (const p of problems) counts[p.kind] = (counts[p.kind] ?? 0) + 1;
  if (problems.length) log.warn("check found problems: run berth check for them", { ...counts });
  else log.debug("check found no problem", { seconds: ((performance.now() - t0) / 1000).toFixed(3) });
}
