/**
 * The cluster section's knobs (BENCH_CLUSTER_*, BENCH_IPS_*; see
 * scripts/bench-cluster.ts), its namespace, and the pools and peer ranges of
 * each phase.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countAddresses } from "../../../plugin/ipam/ip.ts";
import { nthOf, poolRanges } from "../addresses.ts";
import { intEnv, ROOT } from "../lib.ts";
import type { PeerRange } from "./peer.ts";

export const BERTH_SOURCE = process.env.BERTH_BIN ?? join(ROOT, "dist/berth");
export const N = intEnv("BENCH_CLUSTER_N", 40);
export const C = intEnv("BENCH_CLUSTER_C", 20);
export const ROUNDS = intEnv("BENCH_CLUSTER_ROUNDS", 3);
export const BIG_N = intEnv("BENCH_CLUSTER_BIG_N", 30);
export const FILL_PCT = intEnv("BENCH_CLUSTER_FILL_PCT", 90);
export const FILL_PAR = intEnv("BENCH_CLUSTER_FILL_PAR", 32);
export const PHASES = process.env.BENCH_CLUSTER_PHASES || "12345";
export const IPS_N = intEnv("BENCH_IPS_PODS", 100);
export const IPS_NODES = intEnv("BENCH_IPS_NODES", 10);
export const IPS_PER_NODE = intEnv("BENCH_IPS_PER_NODE", 10);
export const IPS_BACKOFF_MS = intEnv("BENCH_IPS_BACKOFF_MS", 10_000);
export const IPS_DEADLINE_S = intEnv("BENCH_IPS_DEADLINE_S", 600);
export const IPS_LARGE = process.env.BENCH_IPS_PODS_LARGE === "1";
export const IPS_LARGE_N = intEnv("BENCH_IPS_LARGE_N", 1000);
export const IPS_LARGE_DEADLINE_S = intEnv("BENCH_IPS_LARGE_DEADLINE_S", 3600);
/** The runtime gives up on a CNI call after this (the bench kills it and counts a failure). */
export const IPS_KILL_MS = 240_000;
export const WARMUP = 3;
export const DATA_ROOT = process.env.BENCH_DATA_ROOT ?? tmpdir();

export const NS = "berth-bench";
export const NETWORK = "bench-cluster";
export const POOL_ANNOTATION = "ipam.spidernet.io/ippool";

export interface PoolDef {
  name: string;
  subnet: string;
  ips?: string[];
  gateway?: string;
}
export const SEQ: PoolDef = { name: "bench-seq", subnet: "10.201.0.0/16", ips: ["10.201.1.1-10.201.4.252"], gateway: "10.201.0.1" };
export const STS: PoolDef = { name: "bench-sts", subnet: "10.201.0.0/16", ips: ["10.201.8.1-10.201.8.254"], gateway: "10.201.0.1" };
export const CONC: PoolDef = { name: "bench-conc", subnet: "10.201.0.0/16", ips: ["10.201.16.1-10.201.16.254"], gateway: "10.201.0.1" };
export const BIG: PoolDef = { name: "bench-big", subnet: "10.200.0.0/16" };
/** "IPs = pods": a pool of exactly as many addresses as pods (phase 5), and its 1000-pod variant. */
const exactPool = (name: string, subnet: string, n: number): PoolDef => {
  const at = nthOf(subnet);
  return { name, subnet, ips: [`${at(1)}-${at(n)}`] };
};
export const IPS = exactPool("bench-ips", "10.202.0.0/16", IPS_N);
export const IPS_BIG = exactPool("bench-ips-large", "10.203.0.0/16", IPS_LARGE_N);
export const POOLS = [SEQ, STS, CONC, BIG, IPS, IPS_BIG];
/** The peer's ranges for the same shapes (each range is an IPPool of its own). */
const peerExact = (range: string, n: number): PeerRange => {
  const at = nthOf(range);
  return { range, start: at(1), end: at(n) };
};
export const P_SEQ: PeerRange = { range: "10.210.0.0/22" };
export const P_CONC: PeerRange = { range: "10.211.0.0/24" };
export const P_IPS = peerExact("10.212.0.0/16", IPS_N);
export const P_IPS_BIG = peerExact("10.213.0.0/16", IPS_LARGE_N);
export const PEER_RANGES = [P_SEQ, P_CONC, P_IPS, P_IPS_BIG];
export const PEER = "whereabouts";
/** The simulated nodes of phase 5 (Node objects made by the bench; no kubelet, no node lifecycle controller in the test plane). */
export const IPS_NODE_NAMES = Array.from({ length: IPS_NODES }, (_, i) => `berth-bench-node-${i + 1}`);
export const BENCH_LABEL = "berth-bench";
/** The /16's addresses: 65534. */
export const BIG_USABLE = Number(countAddresses(poolRanges(BIG)));
export const STS_NAME = "bench-sts";
