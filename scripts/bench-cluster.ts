/**
 * Cluster-mode figures for `npm run bench`: dist/berth run as whole CNI
 * processes (spawn → exit, like the local bench) against the test control
 * plane of scripts/testenv.sh (etcd + kube-apiserver + kube-controller-manager
 * 1.20.2 on 127.0.0.1). scripts/bench.ts calls clusterSection() at its end;
 * run alone (cluster figures only) with
 *
 *   npm run build && node --import tsx scripts/bench-cluster.ts
 *
 * Everything it makes lives in namespace `berth-bench`, SpiderIPPools named
 * bench-*, and the BerthIPClaims of those pools (addresses in 10.200.0.0/16
 * and 10.201.0.0/16), so other users of the control plane are not disturbed;
 * all of it is deleted at the end (and at the start, if a killed run left
 * some). The control plane itself is left running.
 *
 * Phases (the plugin always runs with the ServiceAccount kubeconfig, the
 * bench acts as admin through the tests' admin client; pods are created
 * already bound to their node, pool chosen by the ipam.spidernet.io/ippool
 * annotation; nothing the bench does as admin is timed):
 *   1. sequential, fresh pods on node1 (pool bench-seq, 1020 addresses):
 *      ADD, the pod force-deleted, DEL (the release path); then baselines:
 *      a repeated ADD answered from the node database, and CNI VERSION
 *   2. a real StatefulSet (replicas 1, pool bench-sts): wait for the
 *      controller's pod (new UID), ADD (must return the same address every
 *      time), pod force-deleted, DEL (stays bound: the ordinal is in range).
 *      The DEL comes after the deletion, as a kubelet's does; before it, DEL
 *      would keep the address for a sandbox restart instead.
 *   3. C ADDs spawned at once, fresh pods spread over node1..3, each node its
 *      own dataDir (pool bench-conc); wall time first spawn → last exit
 *   4. a /16 pool (bench-big, 65534 addresses, no ips): ADDs empty, then the
 *      admin creates BerthIPClaims for FILL_PCT% of it (random addresses,
 *      fixed seed), then the first ADD (its hints are stale: up to 84e1d00 it LISTed the
 *      pool's claims) and the next ones; a small pool's ADDs while the fill
 *      is there; then the fill is deleted and the count checked
 *   5. "IPs = pods" (Spiderpool's benchmark shape; runs before phase 4):
 *      BENCH_IPS_PODS pods on BENCH_IPS_NODES simulated nodes (Node
 *      objects the bench makes), pool bench-ips of exactly as many
 *      addresses, every ADD at once (at most BENCH_IPS_PER_NODE in flight
 *      per node), a failed ADD's sandbox DELed and a new one ADDed after a
 *      kubelet-like back-off (scripts/bench/cluster/ips-pods-runner.ts). Reports whether
 *      all were served, the wall, failed attempts by CNI code and by
 *      deadline, distinct addresses, and 409s (claim creates; the peer's
 *      IPPool updates) per served pod from the API server's own request
 *      counters (/metrics: no proxy, nothing added to the plugin's path).
 *      BENCH_IPS_PODS_LARGE=1 adds BENCH_IPS_LARGE_N (1000) pods.
 *
 * With BENCH_PEER_WHEREABOUTS=<binary> (scripts/bench/cluster/peer.ts), Whereabouts
 * runs on the same shapes beside berth, as the admin: phase 1 alternates
 * which goes first per iteration, phase 3 per round; phase 5 runs berth then
 * the peer (100 pods) and the peer then berth (1000). Ratios are berth/peer.
 * CPU per ADD is the plugin process's own (user + system, from the times of
 * the bench's reaped children), in phase 1 and in the local section.
 *
 * The code lives in scripts/bench/cluster/: a file per phase (fresh-pods,
 * stateful-set, concurrent, big-pool, ips-pods), one per phase's report
 * (report-*), and section.ts, which runs them in order; scripts/bench/lib.ts
 * and addresses.ts are shared with the other sections.
 *
 * Environment:
 *   BENCH_CLUSTER_N          sequential fresh-pod and StatefulSet iterations (default 40)
 *   BENCH_CLUSTER_C          concurrent ADDs per round (default 20)
 *   BENCH_CLUSTER_ROUNDS     concurrent rounds (default 3)
 *   BENCH_CLUSTER_BIG_N      ADDs measured on the /16 pool, empty and full (default 30)
 *   BENCH_CLUSTER_FILL_PCT   how full "full" is, in percent (default 90)
 *   BENCH_CLUSTER_FILL_PAR   parallel API requests while filling / emptying (default 32)
 *   BENCH_CLUSTER_PHASES     which phases to run (default 12345), e.g. 4 for the /16 pool alone
 *   BENCH_IPS_PODS           phase 5: pods = addresses (default 100)
 *   BENCH_IPS_NODES          phase 5: simulated nodes (default 10)
 *   BENCH_IPS_PER_NODE       phase 5: CNI calls in flight per node at most (default 10)
 *   BENCH_IPS_BACKOFF_MS     phase 5: back-off before a failed pod's new sandbox (default 10000, plus up to half again)
 *   BENCH_IPS_DEADLINE_S     phase 5: no new attempt after this (default 600); BENCH_IPS_LARGE_DEADLINE_S (3600)
 *   BENCH_IPS_PODS_LARGE=1   phase 5: also BENCH_IPS_LARGE_N (default 1000) pods and addresses
 *   BENCH_PEER_WHEREABOUTS   the Whereabouts binary to compare with (unset: berth alone)
 *   BENCH_PEER_WHEREABOUTS_CRDS  its CRDs (default: crds/ beside the binary)
 *   BENCH_DATA_ROOT, BERTH_BIN as for scripts/bench.ts
 *
 * A failed ADD/DEL in phases 1 and 2, or a StatefulSet pod that comes back
 * on another address, aborts the section (exit 1 after cleaning up). Failed
 * concurrent rounds are left out of the figures and listed, as in the local
 * bench; failed ADDs in phase 4 are counted and listed (after 2 in a row it
 * stops trying). Either makes the bench exit 1. Timings are reported against
 * the issue's aims, never asserted.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { clusterSection } from "./bench/cluster/section.ts";

export { type ClusterOutcome, clusterSection, type LocalFigures } from "./bench/cluster/section.ts";

// Run alone: cluster figures only, with their own BENCH_JSON line.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  clusterSection().then((r) => {
    console.log(`\nBENCH_JSON ${JSON.stringify({ cluster: r.json })}`);
    process.exit(r.ok ? 0 : 1);
  });
}
