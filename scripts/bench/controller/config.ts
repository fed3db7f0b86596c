/**
 * The controller section's knobs (BENCH_CTL_*; see scripts/bench-controller.ts),
 * its namespaces and pools, and the small helpers its phases share.
 */
import { join } from "node:path";
import { ENDPOINT_PLURAL } from "../../../plugin/kube/crd.ts";
import { waitFor } from "../../../test/support/batch.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import { nthOf } from "../addresses.ts";
import { intEnv, percentile, ROOT, r3 } from "../lib.ts";

export const BERTH_SOURCE = process.env.BERTH_BIN ?? join(ROOT, "dist/berth");
export const N = intEnv("BENCH_CTL_N", 20);
export const ROUNDS = intEnv("BENCH_CTL_ROUNDS", 5);
export const BOUND = intEnv("BENCH_CTL_BOUND", 5000);
export const PAR = intEnv("BENCH_CTL_PAR", 32);
export const SCALE = intEnv("BENCH_CTL_SCALE", 10_000);
/** Which phases run (digits; 5, the `berth check` phase, runs only when named). */
export const PHASES = process.env.BENCH_CTL_PHASES || "1234";
/** Phase 4's --list-page-size. */
export const PAGE = intEnv("BENCH_CTL_PAGE", 500);
/** Phase 5: `berth check` runs, each right after one of the controller's full scans. */
export const CHECK_RUNS = intEnv("BENCH_CTL_CHECK_RUNS", 3);
/**
 * Phase 5: the controller's --resync-seconds, long enough that a check never runs beside one of its scans
 * (a scan and a check each take ~1 s per 1,000 objects on the bench machine; default 155 s at 50,000).
 */
export const CHECK_RESYNC = intEnv("BENCH_CTL_CHECK_RESYNC", 30 + Math.ceil(SCALE / 400));
/** `berth check`'s memory target (issue 19), as the controller's limit. */
export const CHECK_MEMORY_MIB = 256;
/** `berth check`'s time target: this many times the controller's full scan of the same objects. */
export const CHECK_RATIO_TARGET = 1.5;
/** The Deployment's memory limit (fixtures/deploy/controller.yaml). */
export const MEMORY_LIMIT_MIB = 256;
/** BENCH_CTL_KEEP_SCALE=1: phase 4's objects stay after the run, and a run that finds them complete skips the fill. */
export const KEEP_SCALE = process.env.BENCH_CTL_KEEP_SCALE === "1";
/** spec.addDeadlineSeconds of phase 3's claims: as a plugin with timeoutSeconds 20 writes it (20 + 10 + 5 s). */
export const ADD_DEADLINE = 35;

export const NS = "berth-bench-ctl";
export const POOL = "bench-ctl";
export const SUBNET = "10.202.0.0/16";
export const SCALE_NS = "berth-bench-scale";
export const SCALE_POOL = "bench-ctl-scale";
export const SCALE_SUBNET = "10.203.0.0/16";
export const STS = "bench-ctl-sts";
export const BIG_STS = "bench-ctl-big";
export const ANNOTATIONS = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [POOL] }) };
export const pods = path("pods", { ns: NS });
export const endpoints = path(ENDPOINT_PLURAL, { ns: NS });
export const statefulsets = path("statefulsets", { ns: NS });

/** The address `i` past 10.202.0.0 (pool bench-ctl). */
export const addr = nthOf(SUBNET);
/** The address `i` past 10.203.0.0 (pool bench-ctl-scale). */
export const scaleAddr = nthOf(SCALE_SUBNET);
/** A claim's name for its address (as the plugin names it). */
export const claimName = (address: string) => `v4-${address.replace(/\./g, "-")}`;

export const say = (s: string) => console.log(`  ${s}`);
/** p50, p90, max, min of a list of times (the release latencies). */
export const dist = (xs: number[]) =>
  xs.length ? { p50: r3(percentile(xs, 50)), p90: r3(percentile(xs, 90)), max: r3(Math.max(...xs)), min: r3(Math.min(...xs)), n: xs.length } : { n: 0 };

export const until = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 20) => waitFor(what, fn, { timeoutMs, everyMs });
