/**
 * Controller figures for `npm run bench`: `berth controller` as a real process
 * (the controller's own ServiceAccount, kube-system/berth-controller) against
 * the test control plane of scripts/testenv.sh. scripts/bench.ts calls
 * controllerSection() at its end; alone:
 *
 *   npm run build && node --import tsx scripts/bench-controller.ts
 *
 * Phases:
 *   1. pod deletion without DEL → release: N plain pods ADDed by dist/berth,
 *      each force-deleted in turn; time until its claim is gone (watch-driven)
 *   2. scale-down without DEL → release: a StatefulSet of 10 whose members 5-9
 *      lost their node (force-deleted, recreated unbound by the StatefulSet
 *      controller, claims kept while in range); time from `kubectl scale
 *      --replicas 5` to all five claims gone; R rounds. Plus one round where
 *      the members are still bound and Terminating (grace 3 s, no DEL): held
 *      past their grace period (their DEL has not run); time from their pod
 *      objects' end to the release
 *   3. 5,000 bound addresses (BENCH_CTL_BOUND): 2,500 plain pods + a
 *      StatefulSet of 2,500 stuck at ordinal 0 (OrderedReady, never Ready),
 *      a claim and an endpoint for each, created as admin; a fresh controller
 *      is started on them: time to the first full scan, full-scan durations
 *      (berth_reconcile_last_duration_seconds), CPU time and RSS from
 *      /proc/<pid>/stat and status, and the API server's GET counts while the
 *      controller re-judges every claim live when its ADD timeout passes; then
 *      a failover: that replica stopped, a fresh one started on the now old
 *      claims (first scan, the live re-judging wave, CPU, peak RSS).
 *   4. a big cluster (BENCH_CTL_SCALE, default 10,000; 50,000 is the figure
 *      BENCHMARKS.md states): that many pods (Pending: no scheduler, no
 *      kubelet), each with a claim and an endpoint, in namespace
 *      berth-bench-scale and pool bench-ctl-scale (10.203.0.0/16); a fresh
 *      controller (--list-page-size 500) scans them: the first full scan's
 *      time, steady scans, LIST requests per scan, and the controller's peak
 *      RSS (VmHWM) against the Deployment's 256 MiB memory limit (the section
 *      fails above it, and if anything is released).
 *   5. `berth check -o json` (run only when named: BENCH_CTL_PHASES=5) as a
 *      whole process against phase 4's objects (made here unless phase 4 ran
 *      or kept them), BENCH_CTL_CHECK_RUNS times, each right after a full
 *      scan of a leading controller (resync BENCH_CTL_CHECK_RESYNC, periodic
 *      check off) so count-drift is judged and the two never share the CPU:
 *      the check's wall time, CPU and peak RSS (the child's ru_maxrss via
 *      /usr/bin/time, else VmHWM from /proc), its problems (the section
 *      fails on any, and at 256 MiB or more), and the ratio of the median
 *      check to the median steady scan (issue 19: at most 1.5×; reported).
 *
 * The controller acts cluster-wide: the section refuses to run while another
 * controller holds the lease kube-system/berth-controller. Everything it makes
 * lives in namespace berth-bench-ctl and pool bench-ctl (10.202.0.0/16); it is
 * removed at the end (and at the start, if a killed run left some), every
 * controller it started is stopped, and no pool keeps the controller's
 * finalizer.
 *
 * The code lives in scripts/bench/controller/: a file per phase
 * (pod-deletion, scale-down, bound, big-cluster) and section.ts, which runs
 * them and prints their lines; scripts/bench/lib.ts and addresses.ts are
 * shared with the other sections.
 *
 * Environment: BENCH_CTL_N (pods in phase 1, default 20), BENCH_CTL_ROUNDS
 * (phase 2, default 5), BENCH_CTL_BOUND (phase 3, default 5000),
 * BENCH_CTL_SCALE (phases 4 and 5, default 10000), BENCH_CTL_PAGE (their
 * page size, default 500), BENCH_CTL_PAR (parallel API requests while
 * filling, default 32), BENCH_CTL_PHASES (default 1234; add 5 for `berth
 * check`), BENCH_CTL_MEMCG (0: phase 4 runs outside a 256 MiB memory
 * cgroup), BENCH_CTL_KEEP_SCALE (1: phase 4/5's objects stay after the run,
 * and a run that finds them complete skips the fill), BENCH_CTL_RSS_FILE
 * (phase 4's RSS samples go there), BENCH_CTL_CHECK_RUNS (phase 5, default
 * 3), BENCH_CTL_CHECK_RESYNC (phase 5, default 30 + BENCH_CTL_SCALE / 400 s),
 * BERTH_BIN. `BENCH_CTL_SCALE=50000 npm run bench` shows 50,000 claims and
 * 50,000 pods (filling them takes several minutes on a small machine).
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BERTH_SOURCE } from "./bench/controller/config.ts";
import { controllerSection } from "./bench/controller/section.ts";

export { type ControllerOutcome, controllerSection } from "./bench/controller/section.ts";

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!existsSync(BERTH_SOURCE)) {
    console.error(`${BERTH_SOURCE} is missing: npm run build`);
    process.exit(1);
  }
  controllerSection().then((o) => process.exit(o.ok ? 0 : 1));
}
