/**
 * The local section's report: its tables, the breakdown of an ADD's time,
 * the aims of berth 0.4 (reported, not asserted), and the figures for the
 * BENCH_JSON line.
 */
import { type Dist, dist, median, percentile, r2, table } from "../lib.ts";
import type { ConcurrentTimes } from "./concurrent.ts";
import { C, N, PLUGINS, type Plugin, ROUNDS } from "./plugins.ts";
import type { SequentialTimes } from "./sequential.ts";

/** What the local phases measured. */
export interface LocalResults {
  seq: Record<Plugin, SequentialTimes>;
  sts: { add: number[]; del: number[]; address: string };
  conc: ConcurrentTimes;
  concWarm: ConcurrentTimes;
  boot: Map<string, number[]>;
}

/** The figures computed from LocalResults that the tables, the targets and the JSON share. */
export interface LocalFigures {
  d: Record<Plugin, { add: Dist; del: Dist }>;
  stsAdd: Dist;
  stsDel: Dist;
  bootD: Record<string, Dist>;
  addCpu: { berth: number; hostLocal: number };
}

export const wallMed = (c: ConcurrentTimes, p: Plugin) => r2(median(c.wall[p]));
const ratio = (a: number, b: number) => r2(a / b);
const cpuMean = (xs: number[]) => r2(xs.reduce((a, b) => a + b, 0) / xs.length);
const f = (x: number) => x.toFixed(2);
// The aims of berth 0.4 (issue 9): sequential ADD p50 <= 2.0x host-local's, 100 at once <= 2.5x its wall.
const SEQ_AIM = 2.0;
const CONC_AIM = 2.5;

export function figuresOf(r: LocalResults): LocalFigures {
  return {
    d: {
      berth: { add: dist(r.seq.berth.add), del: dist(r.seq.berth.del) },
      "host-local": { add: dist(r.seq["host-local"].add), del: dist(r.seq["host-local"].del) },
    },
    stsAdd: dist(r.sts.add),
    stsDel: dist(r.sts.del),
    bootD: Object.fromEntries([...r.boot].map(([k, v]) => [k, dist(v)])),
    addCpu: { berth: cpuMean(r.seq.berth.addCpu), hostLocal: cpuMean(r.seq["host-local"].addCpu) },
  };
}

/** The sequential and StatefulSet tables, with the CPU per ADD. */
export function printSequential(r: LocalResults, { d, stsAdd, stsDel, addCpu }: LocalFigures): void {
  console.log(`Sequential ADD then DEL, fresh container ID each, ms (N=${N}, interleaved):`);
  table(
    ["", "ADD p50", "ADD p99", "DEL p50", "DEL p99"],
    [
      ["berth", d.berth.add.p50, d.berth.add.p99, d.berth.del.p50, d.berth.del.p99],
      ["host-local", d["host-local"].add.p50, d["host-local"].add.p99, d["host-local"].del.p50, d["host-local"].del.p99],
      [
        "berth/host-local (x)",
        ratio(d.berth.add.p50, d["host-local"].add.p50),
        ratio(d.berth.add.p99, d["host-local"].add.p99),
        ratio(d.berth.del.p50, d["host-local"].del.p50),
        ratio(d.berth.del.p99, d["host-local"].del.p99),
      ],
    ],
  );
  console.log(
    `  CPU per ADD (the plugin process, user+system, mean of ${N}): berth ${addCpu.berth.toFixed(2)} ms, host-local ${addCpu.hostLocal.toFixed(2)} ms (${ratio(addCpu.berth, addCpu.hostLocal).toFixed(2)}x)`,
  );
  console.log(`\nStatefulSet pod default/bench-sts-0 coming back (berth only, new container ID + pod UID each), ms (N=${N}):`);
  table(["", "ADD p50", "ADD p99", "DEL p50", "DEL p99"], [["berth sticky", stsAdd.p50, stsAdd.p99, stsDel.p50, stsDel.p99]]);
  console.log(`  same address every time: ${r.sts.address} (checked)`);
}

/** The two concurrent tables (fresh and primed dataDir). */
export function printConcurrent(r: LocalResults): void {
  for (const [label, c] of [
    ["fresh dataDir", r.conc],
    ["primed dataDir (one ADD+DEL first)", r.concWarm],
  ] as const) {
    console.log(`\nConcurrent: ${C} ADDs spawned at once, ${label}, wall ms first spawn -> last exit (${ROUNDS} rounds, interleaved):`);
    table(
      ["", "median", "min", "max", "per-ADD p50", "per-ADD p99"],
      PLUGINS.map((p) => [
        p,
        wallMed(c, p),
        c.wall[p].length ? Math.min(...c.wall[p]) : NaN,
        c.wall[p].length ? Math.max(...c.wall[p]) : NaN,
        percentile(c.each[p], 50),
        percentile(c.each[p], 99),
      ]),
    );
    const bad = PLUGINS.filter((p) => c.failedRounds[p] > 0).map((p) => `${p} ${c.failedRounds[p]} of ${ROUNDS}`);
    console.log(
      `  berth/host-local wall (median): ${ratio(wallMed(c, "berth"), wallMed(c, "host-local")).toFixed(2)}x; ` +
        (bad.length
          ? `FAILED ROUNDS (left out of the figures above): ${bad.join(", ")}`
          : `every ADD of every round succeeded with distinct addresses (checked)`),
    );
  }
}

/** The start-up table, and where an ADD's time goes for each plugin. */
export function printStartup(r: LocalResults, { d, bootD }: LocalFigures): void {
  console.log(`\nStart-up baselines, ms (N=${N}, interleaved):`);
  table(
    ["", "p50", "p99"],
    [...r.boot.keys()].map((k) => [k, bootD[k].p50, bootD[k].p99]),
  );
  const bv = bootD["berth version"].p50;
  const hw = bootD["bun hello-world"]?.p50;
  const tr = bootD["/bin/true (spawn cost)"].p50;
  console.log(
    `  berth ADD p50 ${f(d.berth.add.p50)} ms ~ ${f(tr)} spawn/exec/reap (/bin/true)` +
      (hw !== undefined
        ? ` + ${f(hw - tr)} bun runtime start-up (hello-world - true) + ${f(bv - hw)} berth module loading (version - hello-world)`
        : ` + ${f(bv - tr)} bun start-up and module loading (version - true)`) +
      ` + ${f(d.berth.add.p50 - bv)} CNI work (ADD - version: stdin, config, SQLite open, transaction, fsync, close)`,
  );
  console.log(
    `  host-local ADD p50 ${f(d["host-local"].add.p50)} ms ~ ${f(tr)} spawn/exec/reap + ${f(bootD["host-local CNI VERSION"].p50 - tr)} Go start-up + ${f(d["host-local"].add.p50 - bootD["host-local CNI VERSION"].p50)} work`,
  );
}

/** The aims of berth 0.4 against this run's figures. */
export function targetsOf(r: LocalResults, { d, bootD }: LocalFigures) {
  return {
    seqAddP50Ratio: ratio(d.berth.add.p50, d["host-local"].add.p50),
    seqAddP50Target: SEQ_AIM,
    seqAddMet: d.berth.add.p50 <= SEQ_AIM * d["host-local"].add.p50,
    // What bun costs before berth's own code runs, in the same unit: a compiled console.log(1) against host-local's ADD.
    bunHelloRatio: bootD["bun hello-world"] ? ratio(bootD["bun hello-world"].p50, d["host-local"].add.p50) : undefined,
    concWallRatio: ratio(wallMed(r.conc, "berth"), wallMed(r.conc, "host-local")),
    concWallTarget: CONC_AIM,
    concMet: wallMed(r.conc, "berth") <= CONC_AIM * wallMed(r.conc, "host-local"),
  };
}

/** The load averages around the section, and the targets. */
export function printTargets(targets: ReturnType<typeof targetsOf>, loadBefore: number, loadAfter: number): void {
  console.log(
    `\nLoad average (1 min): ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after ("after" includes the bench's own 100-process bursts; "before" shows what else was running).`,
  );
  console.log(`\nTargets (reported, not asserted):`);
  console.log(
    `  sequential ADD p50 <= ${SEQ_AIM}x host-local: ${targets.seqAddP50Ratio.toFixed(2)}x -> ${targets.seqAddMet ? "met" : "MISSED"}` +
      (targets.bunHelloRatio !== undefined ? ` (bun's own start-up, a compiled console.log(1), is ${targets.bunHelloRatio.toFixed(2)}x host-local's ADD)` : ""),
  );
  console.log(`  ${C} concurrent ADDs <= ${CONC_AIM}x host-local's wall: ${targets.concWallRatio.toFixed(2)}x -> ${targets.concMet ? "met" : "MISSED"}`);
}

/** The local figures of the BENCH_JSON line. */
export function localJson(r: LocalResults, { d, stsAdd, stsDel, bootD, addCpu }: LocalFigures, targets: ReturnType<typeof targetsOf>) {
  return {
    sequential: {
      berth: d.berth,
      hostLocal: d["host-local"],
      ratio: {
        addP50: targets.seqAddP50Ratio,
        addP99: ratio(d.berth.add.p99, d["host-local"].add.p99),
        delP50: ratio(d.berth.del.p50, d["host-local"].del.p50),
        delP99: ratio(d.berth.del.p99, d["host-local"].del.p99),
      },
    },
    addCpuMs: addCpu,
    statefulSet: { add: stsAdd, del: stsDel, address: r.sts.address, sameAddress: true },
    concurrent: Object.fromEntries(
      (
        [
          ["fresh", r.conc],
          ["primed", r.concWarm],
        ] as const
      ).map(([k, c]) => [
        k,
        {
          berth: { wallMedian: wallMed(c, "berth"), walls: c.wall.berth.map(r2), perAdd: dist(c.each.berth) },
          hostLocal: { wallMedian: wallMed(c, "host-local"), walls: c.wall["host-local"].map(r2), perAdd: dist(c.each["host-local"]) },
          ratio: ratio(wallMed(c, "berth"), wallMed(c, "host-local")),
          failedRounds: { berth: c.failedRounds.berth, hostLocal: c.failedRounds["host-local"] },
        },
      ]),
    ),
    startup: bootD,
  };
}
