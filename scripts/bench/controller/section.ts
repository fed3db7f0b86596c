/**
 * The controller section as a whole (scripts/bench-controller.ts documents
 * it): the control plane to itself (no other controller holds the lease),
 * one copy of the binary, the phases BENCH_CTL_PHASES names with their
 * lines, the removal of everything it made, and CONTROLLER_JSON.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { CLAIMS_PATH as CLAIMS, POOL_GROUP, POOL_KIND, POOL_VERSION, POOLS_PATH as POOLS } from "../../../plugin/kube/crd.ts";
import { type ControlPlane, NODES, up } from "../../../test/support/control-plane.ts";
import { runningControllers as running } from "../../../test/support/controller-process.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import { inBatches, percentile, r3 } from "../lib.ts";
import { Api } from "./api.ts";
import { bigCluster } from "./big-cluster.ts";
import { bound } from "./bound.ts";
import { checkScan } from "./check-scan.ts";
import {
  ADD_DEADLINE,
  BERTH_SOURCE,
  BOUND,
  CHECK_MEMORY_MIB,
  CHECK_RATIO_TARGET,
  dist,
  KEEP_SCALE,
  MEMORY_LIMIT_MIB,
  N,
  NS,
  PAR,
  PHASES,
  POOL,
  ROUNDS,
  SCALE,
  SUBNET,
  say,
  until,
} from "./config.ts";
import { type Ctx, removeAll, removeScale } from "./plugin.ts";
import { podDeletion } from "./pod-deletion.ts";
import { startController } from "./process.ts";
import { scaleDown } from "./scale-down.ts";

export interface ControllerOutcome {
  ok: boolean;
  json: Record<string, unknown>;
}

type Json = Record<string, unknown>;

/** Phases 1 and 2, on one controller: release after a pod's deletion, after a scale-down. */
async function releasePhases(ctx: Ctx, json: Json): Promise<void> {
  const ctl = await startController(ctx, "bench-ctl", 60);
  await until("leadership and a first scan", async () => (await ctl.scans()) >= 1, 30_000, 50);
  if (PHASES.includes("1")) {
    const ms = await podDeletion(ctx);
    json.podDeletedToReleasedMs = dist(ms);
    say(
      `pod deleted (no DEL) → claim released, ${N} pods one at a time: p50 ${percentile(ms, 50).toFixed(0)} ms, p90 ${percentile(ms, 90).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`,
    );
  }
  if (PHASES.includes("2")) {
    const s = await scaleDown(ctx);
    json.scaleDownToReleasedMs = {
      allFive: dist(s.all),
      each: dist(s.each),
      terminatingGrace3s: { heldPastDeadlinePlusMarginMs: s.terminating.heldPastDeadlineMs, releasedAfterPodGoneMs: Math.round(s.terminating.afterGone) },
    };
    say(
      `kubectl scale 10 → 5 (members 5-9 gone with their node, no DEL) → all five claims released, ${ROUNDS} rounds: p50 ${percentile(s.all, 50).toFixed(0)} ms, max ${Math.max(...s.all).toFixed(0)} ms (each claim p50 ${percentile(s.each, 50).toFixed(0)} ms)`,
    );
    say(
      `  members still bound and Terminating (grace 3 s, no DEL): held ${s.terminating.heldPastDeadlineMs} ms past deletionTimestamp + 5 s, released ${s.terminating.afterGone.toFixed(0)} ms after their pod objects were gone`,
    );
  }
  await ctl.stop();
}

/** Phase 3 and its lines; false when the controller released a bound address. */
async function boundPhase(ctx: Ctx, json: Json): Promise<boolean> {
  const { api } = ctx;
  let ok = true;
  const { ctl, result } = await bound(ctx);
  json.bound = result;
  say(
    `first full scan ${result.firstScan.scanSeconds} s (leader + lists + judging ${BOUND} claims), ${result.firstScan.wallFromStartSeconds} s after start; CPU ${result.firstScan.cpuSeconds} s, RSS ${result.firstScan.rssMiB} MiB`,
  );
  say(
    `ADD-deadline wave (every claim re-judged live ${ADD_DEADLINE} s after it was made): CPU ${result.addTimeoutWave.cpuSeconds} s, single-object GETs ${JSON.stringify(result.addTimeoutWave.gets)}`,
  );
  say(
    `steady full scans ${result.steady.scanSeconds.join(", ")} s; CPU per 15 s resync ${result.steady.cpuSecondsPerResync15s.join(", ")} s; RSS ${result.steady.rssMiB} MiB (peak ${result.steady.peakRssMiB} MiB); released ${result.released}`,
  );
  const f = result.failover;
  say(
    `failover (fresh replica, claims past the ADD timeout): first scan ${f.firstScanAfterStartSeconds} s after start; live re-judging wave done ~${f.liveWaveSettledAfterSeconds} s after start; CPU ${f.cpuSeconds} s, peak RSS ${f.peakRssMiB} MiB, GETs ${JSON.stringify(f.gets)}`,
  );
  if (result.released !== 0) {
    ok = false;
    console.error(`!! the controller released ${result.released} of the ${BOUND} bound addresses`);
  }
  // Clean-up while the controller runs: claims first, then the pool (its finalizer comes off once empty).
  const t = performance.now();
  const claims = await api.poolClaims();
  await inBatches(claims, PAR, (c) => api.delete(`${CLAIMS}/${c.metadata.name}`));
  await api.delete(`${POOLS}/${POOL}`);
  await until("pool bench-ctl to go (finalizer removed by the controller)", async () => !(await api.get(`${POOLS}/${POOL}`)), 60_000, 100);
  say(`deleted ${claims.length} claims and the pool in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  await ctl.stop();
  return ok;
}

/** Phase 4 and its lines; false above the memory limit, on a release, a failed LIST or a short claim count. */
async function bigClusterPhase(ctx: Ctx, json: Json): Promise<boolean> {
  const { api } = ctx;
  let ok = true;
  const r = await bigCluster(ctx);
  json.bigCluster = r;
  say(
    `big cluster, ${r.pods} pods and ${r.claims} claims: first full scan ${r.firstScan.scanSeconds} s (${r.firstScan.wallFromStartSeconds} s after start; LIST requests ${JSON.stringify(r.firstScan.listRequests)}), steady scans ${r.steadyScanSeconds.join(", ")} s`,
  );
  say(
    `  controller RSS ${r.rssMiB} MiB, peak (VmHWM) ${r.peakRssMiB} MiB: ${r.underLimit ? "under" : "OVER"} the Deployment's ${MEMORY_LIMIT_MIB} MiB limit; CPU ${r.cpuSeconds} s; released ${r.released}`,
  );
  say(
    r.peakDuring
      ? `  highest RSS sample ${r.peakDuring.rssMiB} MiB, ${r.peakDuring.secondsAfterIt} s after the log line "${r.peakDuring.afterLine}"; highest anonymous RSS ${r.peakDuring.anonPeakMiB} MiB`
      : "  (no RSS samples)",
  );
  say(
    r.cgroup
      ? `  in a memory cgroup limited to ${MEMORY_LIMIT_MIB} MiB: peak usage ${r.cgroup.peakMiB} MiB, OOM kills ${r.cgroup.oomKills}`
      : "  not run in a memory cgroup",
  );
  if (!r.underLimit || r.cgroup?.oomKills || r.released !== 0 || r.listFailures.length || (r.claimsMetric ?? 0) < SCALE) {
    ok = false;
    console.error(
      `!! big cluster: peak RSS ${r.peakRssMiB} MiB (limit ${MEMORY_LIMIT_MIB}), released ${r.released}, failed lists ${r.listFailures.join(",") || "none"}, berth_claims ${r.claimsMetric}`,
    );
  }
  const t = performance.now();
  await api.stripFinalizers();
  if (!KEEP_SCALE && !PHASES.includes("5")) {
    await removeScale(api);
    say(`  removed in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  return ok;
}

/** Phase 5 and its lines; false on a problem found, above the memory target, or a failed check. */
async function checkPhase(ctx: Ctx, json: Json): Promise<boolean> {
  const r = await checkScan(ctx);
  json.check = r;
  const over = r.ratio > CHECK_RATIO_TARGET;
  const heavy = r.peakRssMiB >= CHECK_MEMORY_MIB;
  say(
    `berth check -o json, ${SCALE} claims + pods + endpoints: median ${r.checkMedianSeconds} s vs the controller's steady full scan ${r.steadyScanMedianSeconds} s (first ${r.firstScanSeconds} s): ${r.ratio}× (${over ? "OVER" : "within"} ${CHECK_RATIO_TARGET}×); peak RSS ${r.peakRssMiB} MiB (${heavy ? "OVER" : "under"} ${CHECK_MEMORY_MIB} MiB); problems ${r.problems}`,
  );
  if (r.problems) console.error(`!! berth check found problems on the bench's consistent cluster:\n${r.problemsJson}`);
  // The time target is reported, not enforced: the figure is what BENCHMARKS.md states, on a shared machine.
  const t = performance.now();
  if (!KEEP_SCALE) {
    await ctx.api.stripFinalizers();
    await removeScale(ctx.api);
    say(`  removed in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  return !r.problems && !heavy;
}

/** The control plane, if it is up and no other controller holds the lease; otherwise why the section is skipped. */
async function start(): Promise<{ plane: ControlPlane; api: Api } | { skipped: string }> {
  let plane: ControlPlane;
  try {
    plane = up().plane;
  } catch (err) {
    return { skipped: (err as Error).message };
  }
  const api = new Api();
  const holder = await api.leaseHolder();
  if (holder) {
    api.close();
    return {
      skipped: `another berth controller (identity ${holder}) holds lease kube-system/berth-controller; the controller bench needs the control plane to itself`,
    };
  }
  return { plane, api };
}

/** Every controller stopped, finalizers off, the section's objects removed; false when that failed. */
async function cleanUp(api: Api): Promise<boolean> {
  for (const c of [...running]) await c.stop().catch((e) => console.error(`!! ${(e as Error).message}`));
  try {
    await api.stripFinalizers();
    await removeAll(api);
    if (!KEEP_SCALE) await removeScale(api);
    return true;
  } catch (err) {
    console.error(`!! controller bench cleanup failed: ${(err as Error).message}; run node --import tsx scripts/bench-controller.ts again, it cleans up first`);
    return false;
  }
}

/** Runs the whole controller section, prints its lines and CONTROLLER_JSON, and returns its figures. Never throws. */
export async function controllerSection(): Promise<ControllerOutcome> {
  console.log(`\n==== Controller ====`);
  const started = await start();
  if ("skipped" in started) {
    console.error(`\n!! controller section SKIPPED: ${started.skipped}`);
    return { ok: false, json: { skipped: started.skipped } };
  }
  const { plane, api } = started;
  const temp = mkdtempSync(join(tmpdir(), "berth-bench-ctl-"));
  const bin = join(temp, "berth");
  copyFileSync(BERTH_SOURCE, bin); // a rebuild during the bench must not swap the binary under us
  const dirs = Object.fromEntries(NODES.map((n) => [n, mkdtempSync(join(temp, `${n}-`))]));
  const ctx: Ctx = { api, plane, bin, dirs };
  const json: Json = { date: new Date().toISOString(), loadavg1Before: r3(loadavg()[0]) };
  let ok = true;
  try {
    await api.stripFinalizers();
    await removeAll(api);
    if (!KEEP_SCALE) await removeScale(api);
    await api.create(path("namespaces"), { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    await api.create(POOLS, { apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, metadata: { name: POOL }, spec: { subnet: SUBNET } });
    if (PHASES.includes("1") || PHASES.includes("2")) await releasePhases(ctx, json);
    if (PHASES.includes("3") && !(await boundPhase(ctx, json))) ok = false;
    if (PHASES.includes("4") && !(await bigClusterPhase(ctx, json))) ok = false;
    if (PHASES.includes("5") && !(await checkPhase(ctx, json))) ok = false;
    json.loadavg1After = r3(loadavg()[0]);
  } catch (err) {
    ok = false;
    json.error = (err as Error).message;
    console.error(`\n!! controller section FAILED: ${(err as Error).stack}`);
    for (const c of running) console.error(`controller ${c.identity} log tail:\n${c.log().slice(-3000)}`);
  } finally {
    if (!(await cleanUp(api))) ok = false;
    api.close();
    rmSync(temp, { recursive: true, force: true });
  }
  console.log(`\nCONTROLLER_JSON ${JSON.stringify(json)}`);
  return { ok, json };
}
