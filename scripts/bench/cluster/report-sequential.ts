/**
 * The report of the cluster section's phases 1 and 2: one table of
 * sequential ADD/DEL times (fresh pods, the peer's, the StatefulSet pod),
 * the StatefulSet's checks, the baselines, and the CPU per ADD.
 */
import { dist, percentile, r2, table } from "../lib.ts";
import { N, NS, P_SEQ, PEER, SEQ, STS_NAME, WARMUP } from "./config.ts";
import type { freshPods, heldBaseline } from "./fresh-pods.ts";
import { fmt, type LocalFigures, type Report } from "./report.ts";
import type { statefulSet } from "./stateful-set.ts";

export type SeqResult = Awaited<ReturnType<typeof freshPods>> & Awaited<ReturnType<typeof heldBaseline>>;
export type StsResult = Awaited<ReturnType<typeof statefulSet>>;
type Row = (string | number)[];

/** Phase 1's rows (berth's, and the peer's with the ratios), its JSON and aims. */
function seqRows(seq: SeqResult, local: LocalFigures, out: Report): Row[] {
  const rows: Row[] = [];
  const [a, dl] = [dist(seq.add), dist(seq.del)];
  rows.push([`fresh pod (pool ${SEQ.name}; DEL after the pod is deleted: release)`, a.p50, a.p99, dl.p50, dl.p99]);
  out.json.sequential = { add: a, del: dl, freedByOthers: seq.freedByOthers };
  out.json.baselines = { heldAdd: dist(seq.again), version: dist(seq.version) };
  // 0.4's aims are ratios within the run (issue 9), against the local ADD and the peer, below.
  Object.assign(out.targets, { seqAddP50: a.p50 });
  if (local.addP50 !== undefined) {
    const x = a.p50 / local.addP50;
    Object.assign(out.targets, { seqAddVsLocalP50: r2(x), seqAddVsLocalMet: x <= 2 });
    out.aims.push(`fresh-pod ADD p50 <= 2.0x the local-mode ADD p50 (${fmt(local.addP50)} ms): ${fmt(x)}x -> ${x <= 2 ? "met" : "MISSED"}`);
  }
  if (seq.peer) {
    const [pa, pd] = [dist(seq.peer.add), dist(seq.peer.del)];
    rows.push([`${PEER} fresh pod (range ${P_SEQ.range}; DEL after the pod is deleted)`, pa.p50, pa.p99, pd.p50, pd.p99]);
    rows.push([`berth/${PEER} (x)`, a.p50 / pa.p50, a.p99 / pa.p99, dl.p50 / pd.p50, dl.p99 / pd.p99]);
    const x = a.p50 / pa.p50;
    out.json.peerSequential = { add: pa, del: pd, ratioAddP50: r2(x), ratioDelP50: r2(dl.p50 / pd.p50) };
    Object.assign(out.targets, { seqAddVsPeerP50: r2(x), seqAddVsPeerMet: x <= 0.6 });
    out.aims.push(`fresh-pod ADD p50 <= 0.6x ${PEER}'s: ${fmt(x)}x -> ${x <= 0.6 ? "met" : "MISSED"}`);
  }
  return rows;
}

/** Phase 2's row and JSON. */
function stsRow(sts: StsResult, out: Report): Row {
  const [a, dl] = [dist(sts.add), dist(sts.del)];
  out.json.statefulSet = {
    add: a,
    del: dl,
    address: sts.address,
    sameAddress: true,
    keptBecause: sts.reasons,
    recreateP50: r2(percentile(sts.recreate, 50)),
  };
  return [`StatefulSet pod back with a new UID (DEL: stays bound)`, a.p50, a.p99, dl.p50, dl.p99];
}

function printSts(sts: StsResult): void {
  console.log(
    `  StatefulSet ${NS}/${STS_NAME}: pod ${STS_NAME}-0 got ${sts.address} back on all ${N + WARMUP} ADDs after its first (checked); DEL kept it: ${Object.entries(
      sts.reasons,
    )
      .map(([k, v]) => `"${k}" x${v}`)
      .join(", ")}`,
  );
  console.log(`  the controller recreated the pod in p50 ${percentile(sts.recreate, 50).toFixed(0)} ms (waited for, not in the figures)`);
}

/** Phase 1's baselines, and the CPU per fresh-pod ADD against the local mode's and the peer's. */
function printBaselines(seq: SeqResult, local: LocalFigures, out: Report): void {
  const [h, v] = [dist(seq.again), dist(seq.version)];
  console.log(
    `  baselines (N=${N}): a repeated ADD answered from the node database (loads the cluster code, no API request) p50 ${fmt(h.p50)} / p99 ${fmt(h.p99)}; CNI VERSION p50 ${fmt(v.p50)}`,
  );
  // CPU of the plugin process itself (user + system, from the bench's reaped-children times), mean per ADD.
  const mean = (xs: number[]) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : NaN);
  const cpu = mean(seq.addCpu);
  const peerCpu = seq.peer ? mean(seq.peer.addCpu) : NaN;
  const vsLocal = local.addCpuMs !== undefined ? cpu / local.addCpuMs : NaN;
  console.log(
    `  CPU per fresh-pod ADD (the plugin process, user+system, mean of ${seq.addCpu.length}): berth ${fmt(cpu)} ms` +
      (local.addCpuMs !== undefined
        ? `, ${fmt(vsLocal)}x a local-mode ADD's ${fmt(local.addCpuMs)} ms`
        : " (no local-mode figure: run with scripts/bench.ts for the ratio)") +
      (seq.peer ? `; ${PEER} ${fmt(peerCpu)} ms (berth/${PEER} ${fmt(cpu / peerCpu)}x)` : ""),
  );
  out.json.cpuPerAdd = {
    berthMs: r2(cpu),
    localBerthMs: local.addCpuMs === undefined ? null : r2(local.addCpuMs),
    ratioVsLocal: Number.isNaN(vsLocal) ? null : r2(vsLocal),
    peerMs: Number.isNaN(peerCpu) ? null : r2(peerCpu),
  };
  if (!Number.isNaN(vsLocal)) {
    Object.assign(out.targets, { cpuVsLocal: r2(vsLocal), cpuVsLocalMet: vsLocal <= 1.5 });
    out.aims.push(`CPU per cluster ADD <= 1.5x a local-mode ADD's: ${fmt(vsLocal)}x -> ${vsLocal <= 1.5 ? "met" : "MISSED"}`);
  }
}

/** Phases 1 and 2: the sequential table and what goes with it. */
export function reportSequential(seq: SeqResult | undefined, sts: StsResult | undefined, local: LocalFigures, out: Report): void {
  if (!seq && !sts) return;
  console.log(`\nCluster mode, sequential, ms (spawn -> exit, node1, N=${N}, ${WARMUP} warm-up iterations left out):`);
  const rows: Row[] = [];
  if (seq) rows.push(...seqRows(seq, local, out));
  if (sts) rows.push(stsRow(sts, out));
  table(["", "ADD p50", "ADD p99", "DEL p50", "DEL p99"], rows);
  if (sts) printSts(sts);
  if (seq) printBaselines(seq, local, out);
}
