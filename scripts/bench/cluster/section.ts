/**
 * The cluster section as a whole (scripts/bench-cluster.ts documents it):
 * the control plane, the objects the section makes and their removal (also
 * on Ctrl-C), one copy of the binary, the phases in order, their reports,
 * and the section's outcome for BENCH_JSON.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { POOLS_PATH } from "../../../plugin/kube/crd.ts";
import { NODES, up } from "../../../test/support/control-plane.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import { BenchFailure, gitRev, ROOT, r2, sleep } from "../lib.ts";
import { Admin, removeAll, setUp } from "./admin.ts";
import { bigPool } from "./big-pool.ts";
import { concurrentRounds } from "./concurrent.ts";
import {
  BERTH_SOURCE,
  BIG_N,
  C,
  DATA_ROOT,
  FILL_PCT,
  IPS,
  IPS_BIG,
  IPS_DEADLINE_S,
  IPS_LARGE,
  IPS_LARGE_DEADLINE_S,
  IPS_LARGE_N,
  IPS_N,
  IPS_NODES,
  N,
  NS,
  P_IPS,
  P_IPS_BIG,
  P_SEQ,
  PEER,
  PEER_RANGES,
  PHASES,
  POOLS,
  ROUNDS,
  SEQ,
  WARMUP,
} from "./config.ts";
import { freshPods, heldBaseline } from "./fresh-pods.ts";
import { ipsPodsPhase } from "./ips-pods.ts";
import { type Peer, peerBinary, setUpPeer } from "./peer.ts";
import { type Ctx, failures } from "./plugin.ts";
import type { LocalFigures, Report } from "./report.ts";
import { reportBigPool } from "./report-big-pool.ts";
import { reportConcurrent } from "./report-concurrent.ts";
import { reportIpsPods } from "./report-ips-pods.ts";
import { reportSequential } from "./report-sequential.ts";
import { statefulSet } from "./stateful-set.ts";

export type { LocalFigures } from "./report.ts";

export interface ClusterOutcome {
  /** For BENCH_JSON: the figures, or {skipped} / {failed} with the reason. */
  json: Record<string, unknown>;
  /** False when the section was skipped or failed, or a concurrent round failed: the bench must exit 1. */
  ok: boolean;
}

type Say = (s: string) => void;
const say: Say = (s) => console.log(`  ${s}`);

/** Percentage of CPU time the whole machine spent idle over the next `ms` (/proc/stat): what is running right now, unlike the load average. */
async function cpuIdle(ms: number): Promise<number> {
  const read = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return b.total > a.total ? (100 * (b.idle - a.idle)) / (b.total - a.total) : NaN;
}

/**
 * Ctrl-C while the cluster holds our objects (up to tens of thousands of claims): clean up first, then hand
 * the signal to whoever listened before (scripts/bench.ts exits 130). A second signal exits at once.
 * Returns what puts the earlier listeners back.
 */
function guardSignals(tidy: () => Promise<void>): () => void {
  const saved = new Map((["SIGINT", "SIGTERM"] as const).map((sig) => [sig, process.listeners(sig)]));
  let signalled = false;
  const onSignal = (sig: "SIGINT" | "SIGTERM") => {
    if (signalled) process.exit(130);
    signalled = true;
    console.error(`\n${sig}: removing what the cluster bench made on the API server (again to abort) ...`);
    void tidy().finally(() => {
      const before = saved.get(sig)!;
      for (const l of before) (l as (s: string) => void)(sig);
      process.exit(130);
    });
  };
  for (const sig of saved.keys()) {
    process.removeAllListeners(sig);
    process.on(sig, onSignal);
  }
  return () => {
    for (const [sig, ls] of saved) {
      process.removeListener(sig, onSignal);
      for (const l of ls) process.on(sig, l as () => void);
    }
  };
}

/** The binary's copy in `dir` (one consistent binary for the whole section, even if a build elsewhere rewrites dist/berth meanwhile), and what it was built from. */
function copyBinary(dir: string): { bin: string; sha: string; rev: string; dirty: string[] } {
  const bin = join(dir, "berth");
  copyFileSync(BERTH_SOURCE, bin);
  const sha = createHash("sha256").update(readFileSync(bin)).digest("hex").slice(0, 12);
  const rev = process.env.BERTH_BIN ? "BERTH_BIN" : gitRev();
  const dirty = process.env.BERTH_BIN
    ? []
    : (spawnSync("git", ["-C", ROOT, "status", "--short", "--", "plugin", "store"], { encoding: "utf8" }).stdout?.trim().split("\n").filter(Boolean) ?? []);
  return { bin, sha, rev, dirty };
}

function printHeader(b: ReturnType<typeof copyBinary>, server: string, startedByUs: boolean, peer: Peer | undefined, loadBefore: number, idleBefore: number) {
  console.log(
    `berth cluster bench: ${BERTH_SOURCE} (copy sha256 ${b.sha}, source ${b.rev}${b.dirty.length ? `; uncommitted under plugin/ store/: ${b.dirty.map((l) => l.trim()).join(", ")}` : ""})`,
  );
  console.log(
    `  API server ${server}${startedByUs ? " (started by this bench; `bash scripts/testenv.sh down` stops it)" : " (already running)"}, plugin as ServiceAccount kube-system/berth`,
  );
  console.log(
    `  namespace ${NS}, pools ${POOLS.map((p) => p.name).join(", ")}; N=${N} (+${WARMUP} warm-up), ${ROUNDS} rounds x ${C} concurrent ADDs, ${BIG_N} ADDs on the /16 empty and ${FILL_PCT}% full`,
  );
  if (peer)
    console.log(
      `  peer: ${PEER} ${peer.bin} on the same shapes, interleaved with berth (as the admin: its own identity is not part of the comparison); ranges ${PEER_RANGES.map((r) => r.range).join(", ")}`,
    );
  console.log(
    `  ${cpus().length} CPUs, load average (1 min) ${loadBefore.toFixed(2)} before (it lags: right after the local bench it still counts its bursts); CPU idle over the last 2 s ${idleBefore.toFixed(0)}%\n`,
  );
}

/** Runs `fn` as phase `n` when BENCH_CLUSTER_PHASES names it, saying how long it took. */
async function phase<T>(n: string, label: string, fn: () => Promise<T>): Promise<T | undefined> {
  if (!PHASES.includes(n)) return undefined;
  const t = performance.now();
  say(`${n}/5 ${label} ...`);
  const r = await fn();
  say(`  (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  return r;
}

/** The phases BENCH_CLUSTER_PHASES names, in their order (5 before 4). */
async function runPhases(ctx: Ctx) {
  const seq = await phase("1", "sequential ADD/DEL of fresh pods, and baselines", async () => ({
    ...(await freshPods(ctx, SEQ, N, "seq", WARMUP, true, ctx.peer ? P_SEQ : undefined)),
    ...(await heldBaseline(ctx)),
  }));
  const sts = await phase("2", "StatefulSet pod coming back", () => statefulSet(ctx));
  const conc = await phase("3", `${C} concurrent ADDs from ${NODES.length} nodes, ${ROUNDS} rounds`, () => concurrentRounds(ctx, ROUNDS));
  // Phase 5 runs before phase 4, whose tens of thousands of claims leave the API server slow for minutes.
  const ips = await phase("5", `"IPs = pods": ${IPS_N} pods on ${IPS_NODES} nodes, ${IPS_N} addresses${IPS_LARGE ? `, then ${IPS_LARGE_N}` : ""}`, async () => {
    const rs = [await ipsPodsPhase(ctx, IPS_N, IPS, P_IPS, IPS_DEADLINE_S, false, say)];
    if (IPS_LARGE) rs.push(await ipsPodsPhase(ctx, IPS_LARGE_N, IPS_BIG, P_IPS_BIG, IPS_LARGE_DEADLINE_S, true, say));
    return rs;
  });
  const big = await phase("4", `/16 pool empty vs ${FILL_PCT}% full`, () => bigPool(ctx, say));
  return { seq, sts, conc, ips, big };
}

/** Every phase's report, then the load and the aims. */
function report(r: Awaited<ReturnType<typeof runPhases>>, local: LocalFigures, out: Report, loadBefore: number, loadAfter: number): void {
  reportSequential(r.seq, r.sts, local, out);
  reportConcurrent(r.conc?.rounds, r.conc?.peerRounds ?? [], out);
  reportIpsPods(r.ips, local, out);
  reportBigPool(r.big, out);
  console.log(`\nLoad average (1 min): ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after.`);
  console.log(`Cluster targets (reported, not asserted):`);
  for (const a of out.aims) console.log(`  ${a}`);
}

/** Checks the control plane answers, makes the section's objects, runs and reports the phases. */
async function measure(api: Admin, env: ReturnType<typeof up>, fresh: (label: string) => string, local: LocalFigures): Promise<Report> {
  const server = env.plane.server;
  const ready = await api.list(POOLS_PATH, { limit: 1 }).then(
    () => true,
    (e: Error) => e.message,
  );
  if (ready !== true) throw new BenchFailure(`control plane at ${server} does not answer: ${ready}`);
  const b = copyBinary(fresh("bin"));
  const leftovers = await api.get(path("namespaces", { name: NS }));
  await removeAll(api, say); // what a killed run may have left
  if (leftovers) say(`removed leftovers of an earlier run`);
  await setUp(api);
  const peerBin = peerBinary();
  const peer = peerBin ? await setUpPeer(api, peerBin, env.plane.adminKubeconfig, fresh("peer")) : undefined;

  const loadBefore = loadavg()[0];
  const idleBefore = await cpuIdle(2000);
  const started = new Date();
  printHeader(b, server, env.startedByUs, peer, loadBefore, idleBefore);
  const ctx: Ctx = { api, bin: b.bin, dirs: new Map(), fresh, pluginKubeconfig: env.plane.pluginKubeconfig, peer };
  const results = await runPhases(ctx);
  const loadAfter = loadavg()[0];
  const json: Record<string, unknown> = {
    date: started.toISOString(),
    binarySha256: b.sha,
    rev: b.rev,
    uncommitted: b.dirty,
    server,
    phases: PHASES,
    n: N,
    warmup: WARMUP,
    loadavg1: { before: r2(loadBefore), after: r2(loadAfter) },
    cpuIdlePctBefore: Math.round(idleBefore),
  };
  const out: Report = { json, aims: [], targets: {} };
  report(results, local, out, loadBefore, loadAfter);
  return out;
}

/** Runs the whole cluster section, prints its tables, and returns its figures. Never throws. */
export async function clusterSection(local: LocalFigures = {}): Promise<ClusterOutcome> {
  console.log(`\n==== Cluster mode ====`);
  let env: ReturnType<typeof up>;
  try {
    env = up();
  } catch (err) {
    const why = (err as Error).message;
    console.error(`\n!! cluster section SKIPPED: ${why}`);
    return { json: { skipped: why }, ok: false };
  }
  const api = new Admin();
  const temp: string[] = [];
  const fresh = (label: string) => {
    const d = mkdtempSync(join(DATA_ROOT, `berth-bench-cluster-${label}-`));
    temp.push(d);
    return d;
  };
  let tidied = false;
  const tidy = async () => {
    if (tidied) return;
    tidied = true;
    try {
      await removeAll(api, say);
    } catch (err) {
      console.error(`!! cleanup failed: ${(err as Error).message}; run \`node --import tsx scripts/bench-cluster.ts\` again, it cleans up first`);
    }
    for (const d of temp) rmSync(d, { recursive: true, force: true });
    api.close();
  };
  const restoreSignals = guardSignals(tidy);
  try {
    const { json, targets } = await measure(api, env, fresh, local);
    await tidy();
    say(`cleaned up: namespace ${NS}, pools ${POOLS.map((p) => p.name).join(", ")} and their claims are gone`);
    if (failures.length) console.error(`\n!! cluster: ${failures.length} problem(s):\n  ${failures.join("\n  ")}`);
    json.targets = targets;
    json.failures = failures;
    return { ok: failures.length === 0, json };
  } catch (err) {
    const why = err instanceof BenchFailure ? err.message : ((err as Error).stack ?? String(err));
    console.error(`\n!! cluster section FAILED: ${why}`);
    await tidy();
    return { json: { failed: why.split("\n")[0] }, ok: false };
  } finally {
    await tidy();
    restoreSignals();
  }
}
