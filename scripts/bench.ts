/**
 * berth vs. host-local, both run as whole CNI plugin processes, the way a
 * container runtime runs them. Run after `npm run build`:
 *
 *   node --import tsx scripts/bench.ts          (or: npm run bench)
 *
 * The local section's phases live in scripts/bench/local/ (plugins,
 * sequential, concurrent, startup, report); scripts/bench/lib.ts and
 * addresses.ts are shared with the cluster and controller sections.
 *
 * Environment:
 *   BENCH_N          sequential iterations (default 200)
 *   BENCH_ROUNDS     concurrent rounds (default 5)
 *   BENCH_C          concurrent ADDs per round (default 100)
 *   BENCH_DATA_ROOT  where the temporary dataDirs go (default os.tmpdir()); e.g. /dev/shm
 *   BENCH_ONLY=local skip the cluster and controller sections
 *                    to take the disk (fsync) out of the picture
 *   HOST_LOCAL       host-local binary (default /usr/lib/cni/host-local)
 *   BERTH_BIN        berth binary (default dist/berth)
 *
 * Prints a table, then one line `BENCH_JSON {...}` with every figure.
 * A failed sequential ADD/DEL or a StatefulSet pod that does not get its
 * address back aborts the run (exit 1). A concurrent round with a failed ADD
 * or duplicate addresses is left out of the figures, listed loudly at the end,
 * and makes the run exit 1 after printing everything else.
 */
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { BERTH } from "../test/support/berth.ts";
import { BenchFailure, gitRev, r2 } from "./bench/lib.ts";
import { concurrent, failures } from "./bench/local/concurrent.ts";
import { C, cleanup, DATA_ROOT, HOST_LOCAL, N, ROUNDS, WARMUP } from "./bench/local/plugins.ts";
import {
  figuresOf,
  type LocalResults,
  localJson,
  printConcurrent,
  printSequential,
  printStartup,
  printTargets,
  targetsOf,
  wallMed,
} from "./bench/local/report.ts";
import { sequential, statefulSet } from "./bench/local/sequential.ts";
import { buildHello, startup } from "./bench/local/startup.ts";

process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** The local section's phases, in order. */
async function measure(hello: string | undefined): Promise<LocalResults> {
  const seq = await sequential();
  const sts = await statefulSet();
  const conc = await concurrent(false);
  const concWarm = await concurrent(true);
  const boot = await startup(hello);
  return { seq, sts, conc, concWarm, boot };
}

async function main() {
  if (!existsSync(HOST_LOCAL)) {
    throw new BenchFailure(`${HOST_LOCAL} is missing: apt-get install -y containernetworking-plugins (or set HOST_LOCAL)`);
  }
  const hello = buildHello();
  const started = new Date();
  const rev = gitRev();
  console.log(`berth bench: ${BERTH} (source ${rev}) vs ${HOST_LOCAL}`);
  console.log(`  N=${N} sequential iterations (+${WARMUP} warm-up), ${ROUNDS} rounds x ${C} concurrent ADDs, dataDirs under ${DATA_ROOT}`);
  const loadBefore = loadavg()[0];
  console.log(`  ${cpus().length} CPUs, ${cpus()[0]?.model ?? "?"}, node ${process.version}, load average (1 min) ${loadBefore.toFixed(2)}\n`);

  const results = await measure(hello);
  const loadAfter = loadavg()[0];
  const fig = figuresOf(results);
  printSequential(results, fig);
  printConcurrent(results);
  printStartup(results, fig);
  const targets = targetsOf(results, fig);
  printTargets(targets, loadBefore, loadAfter);

  // Cluster mode (scripts/bench-cluster.ts): starts the test control plane, or says why it cannot and is skipped.
  // BENCH_ONLY=local skips the cluster and controller sections (no control plane needed).
  const localOnly = process.env.BENCH_ONLY === "local";
  const { conc } = results;
  const cluster = localOnly
    ? { ok: true, json: { skipped: "BENCH_ONLY=local" } as Record<string, unknown> }
    : await (await import("./bench-cluster.ts")).clusterSection({
        addP50: fig.d.berth.add.p50,
        addCpuMs: fig.addCpu.berth,
        concWallMs: conc.wall.berth.length ? wallMed(conc, "berth") : undefined, // undefined: every round failed
        concC: C,
      });

  const json = {
    date: started.toISOString(),
    rev,
    n: N,
    rounds: ROUNDS,
    concurrency: C,
    dataRoot: DATA_ROOT,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    loadavg1: { before: r2(loadBefore), after: r2(loadAfter) },
    ...localJson(results, fig, targets),
    targets,
    failures,
    cluster: cluster.json,
  };
  console.log(`\nBENCH_JSON ${JSON.stringify(json)}`);
  if (!cluster.ok) {
    console.error(`\nbench FAILED: the cluster section ${"skipped" in (cluster.json as object) ? "was skipped" : "failed or had failures"} (see above)`);
    process.exitCode = 1;
  }
  if (failures.length) {
    console.error(`\nbench FAILED: ${failures.length} concurrent round(s) had failed ADDs or duplicate addresses:\n  ${failures.join("\n  ")}`);
    process.exitCode = 1;
  }

  // The controller (scripts/bench-controller.ts): release latencies, full scans, CPU and RSS with 5,000 bound addresses,
  // and a big cluster (BENCH_CTL_SCALE pods and claims): scan times and peak RSS against the Deployment's limit.
  if (!localOnly) {
    const { controllerSection } = await import("./bench-controller.ts");
    if (!(await controllerSection()).ok) process.exitCode = 1;
  }
}

main().then(
  () => cleanup(),
  (err) => {
    cleanup();
    console.error(`\nbench FAILED: ${err instanceof BenchFailure ? err.message : ((err as Error).stack ?? err)}`);
    process.exit(1);
  },
);
