/**
 * Phase 5 of the controller section: `berth check -o json` as a whole
 * process against phase 4's big cluster (BENCH_CTL_SCALE pods, claims and
 * endpoints), beside a leading controller (so count-drift is judged), and
 * that controller's own full scans of the same objects in the same run
 * (issue 19: a check takes at most 1.5× a full scan, under 256 MiB).
 *
 * The controller scans every BENCH_CTL_CHECK_RESYNC seconds with the periodic
 * check off; each check starts right after one of its scans ends, so the two
 * never share the CPU (a run that overlapped a scan anyway is flagged). The
 * check's peak RSS is the child's own: getrusage's ru_maxrss through
 * /usr/bin/time when it is there, else the last VmHWM read from /proc while
 * it ran. A consistent cluster must show no problem.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { median, r3 } from "../lib.ts";
import { scaleObjects } from "./big-cluster.ts";
import { CHECK_RESYNC, CHECK_RUNS, PAGE, say, until } from "./config.ts";
import type { Ctx } from "./plugin.ts";
import { procStats, startController } from "./process.ts";

const TIME = "/usr/bin/time";

export interface CheckRun {
  wallSeconds: number;
  cpuSeconds?: number;
  /** Peak RSS of the check process (MiB), and how it was read. */
  peakRssMiB: number;
  rssFrom: "getrusage" | "proc VmHWM";
  exitCode: number | null;
  problems: number;
  kinds: Record<string, number>;
  /** The full scan it followed (s), and whether the controller started another one while it ran. */
  afterScanSeconds: number;
  overlappedScan: boolean;
  loadavg1: number;
}

/** One `berth check -o json` run: wall time, the child's CPU time and peak RSS, its problems. */
async function runCheck(bin: string, kubeconfig: string): Promise<Omit<CheckRun, "afterScanSeconds" | "overlappedScan" | "loadavg1"> & { out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-check-"));
  const usage = join(dir, "usage");
  const args = ["check", "--kubeconfig", kubeconfig, "--list-page-size", String(PAGE), "-o", "json"];
  const withTime = existsSync(TIME);
  const t0 = performance.now();
  // %M: ru_maxrss (KiB) of the child; %U %S its CPU seconds. -o keeps them out of berth's stderr.
  const child = withTime
    ? spawn(TIME, ["-o", usage, "-f", "%M %U %S", bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  // The /proc figure, kept either way (under /usr/bin/time the check is time's child: its pid is read once).
  let hwm = 0;
  let checkPid: number | undefined = withTime ? undefined : child.pid;
  const poll = setInterval(() => {
    try {
      checkPid ??= Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ")[0]) || undefined;
      if (checkPid) hwm = Math.max(hwm, procStats(checkPid).hwmMiB);
    } catch {
      // not started yet, or gone
    }
  }, 50);
  const code = await new Promise<number | null>((done) => child.on("close", (c) => done(c)));
  const wallSeconds = (performance.now() - t0) / 1000;
  clearInterval(poll);
  let peakRssMiB = hwm;
  let cpuSeconds: number | undefined;
  if (withTime && existsSync(usage)) {
    const [kib, user, sys] = readFileSync(usage, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
    if (Number.isFinite(kib)) peakRssMiB = kib / 1024;
    cpuSeconds = user + sys;
  }
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0 && code !== 1) throw new Error(`berth check exited ${code}: ${err.trim().slice(-2000)}`);
  const report = JSON.parse(out) as { problems: { kind: string }[] };
  const kinds: Record<string, number> = {};
  for (const p of report.problems) kinds[p.kind] = (kinds[p.kind] ?? 0) + 1;
  return {
    wallSeconds: r3(wallSeconds),
    cpuSeconds: cpuSeconds === undefined ? undefined : r3(cpuSeconds),
    peakRssMiB: r3(peakRssMiB),
    rssFrom: withTime ? "getrusage" : "proc VmHWM",
    exitCode: code,
    problems: report.problems.length,
    kinds,
    out,
  };
}

/**
 * Phase 5: a leading controller scanning phase 4's objects, and CHECK_RUNS `berth check -o json` runs, each
 * right after one of its scans: their times, the check's peak RSS and problems, and the ratio of the median
 * check to the median steady scan.
 */
export async function checkScan(ctx: Ctx) {
  const { api } = ctx;
  await scaleObjects(api);
  const ctl = await startController(ctx, "bench-ctl-check", CHECK_RESYNC, ["--list-page-size", String(PAGE), "--check-interval-seconds", "0"]);
  const scanSeconds = async () => r3((await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!);
  await until("the first full scan", async () => (await ctl.scans()) >= 1, 600_000, 200);
  const firstScanSeconds = await scanSeconds();
  say(`controller's first full scan ${firstScanSeconds} s; berth check runs after each of the next ${CHECK_RUNS} (resync ${CHECK_RESYNC} s)`);
  const runs: CheckRun[] = [];
  const steady: number[] = [];
  let problemsOut = "";
  let scans = await ctl.scans();
  for (let i = 0; i < CHECK_RUNS; i++) {
    await until("the next full scan", async () => (await ctl.scans()) > scans, (CHECK_RESYNC + 600) * 1000, 100);
    scans = await ctl.scans();
    const afterScanSeconds = await scanSeconds();
    steady.push(afterScanSeconds);
    const load = loadavg()[0];
    const { out, ...run } = await runCheck(ctx.bin, ctx.plane.adminKubeconfig);
    // Scans start every CHECK_RESYNC s from the start of the last one: a check longer than the gap shared the CPU.
    const overlappedScan = afterScanSeconds + run.wallSeconds + 0.2 >= CHECK_RESYNC;
    runs.push({ ...run, afterScanSeconds, overlappedScan, loadavg1: r3(load) });
    if (run.problems && !problemsOut) problemsOut = out;
    say(
      `  check ${i + 1}: ${run.wallSeconds} s wall, ${run.cpuSeconds ?? "?"} s CPU, peak RSS ${run.peakRssMiB} MiB (${run.rssFrom}), ${run.problems} problems${run.problems ? ` ${JSON.stringify(run.kinds)}` : ""}; after a ${afterScanSeconds} s scan${overlappedScan ? " (OVERLAPPED the next scan)" : ""}; load ${load.toFixed(2)}`,
    );
  }
  const m = await ctl.metrics();
  const controller = procStats(ctl.pid);
  await ctl.stop();
  const checkMedian = median(runs.map((r) => r.wallSeconds));
  const scanMedian = median(steady);
  return {
    claims: m.get("berth_claims"),
    firstScanSeconds,
    steadyScanSeconds: steady,
    runs,
    checkMedianSeconds: r3(checkMedian),
    steadyScanMedianSeconds: r3(scanMedian),
    ratio: r3(checkMedian / scanMedian),
    peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
    problems: Math.max(...runs.map((r) => r.problems)),
    problemsJson: problemsOut ? problemsOut.slice(0, 4000) : undefined,
    controllerPeakRssMiB: controller.hwmMiB,
  };
}
