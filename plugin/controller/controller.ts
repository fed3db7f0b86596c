/**
 * `berth controller`: the long-running reconciler, one active replica at a
 * time (Lease, renewed on its own timer: leader.ts). It reacts to watch
 * events and runs a full scan (full-scan.ts) on taking the lead and every
 * resync interval. Every release is decided twice, on what it saw and on a
 * live re-read; every write checks, right before it is sent, that this
 * replica still leads (guarded-api.ts).
 *
 * The cases it handles, per claim (judge-claim.ts decides, nothing else):
 * - the claim's pod object is gone, or another pod has its name: released,
 *   unless it is a StatefulSet member the set still keeps (in range, or
 *   Retain), or a static pod whose node still exists;
 * - the claim's StatefulSet is gone or scaled below it: released, once its
 *   pod object is gone too;
 * - a Succeeded or Failed pod: released where the kubelet reports that phase
 *   only after stopping the sandbox (1.24 and later, containerd); else held
 *   until its DEL or its pod object's end;
 * - a pod still Terminating past its grace period, on any node: held (its
 *   DEL has not run; force-deleting the pod frees it);
 * - a claim never bound whose ADD may still run (by the controller's own
 *   clock since it first saw the claim): left alone; past that, released if
 *   its pod is gone, held if the pod exists;
 * - a claim of a pod that exists, which its endpoint does not list (the
 *   endpoint was deleted, with its namespace or by hand): held, and the entry
 *   written back (endpoint-repair.ts; not in a namespace being deleted);
 * - an endpoint listing an address whose claim is gone or another pod's
 *   (its release's endpoint write failed): stripped at the next full scan;
 * - an IPAMClaim-held claim (a VM's address): released once its IPAMClaim
 *   (by UID) is gone and no pod that names it exists (both are events);
 * - pools: counts from the claims, and the finalizer (pool-reconcile.ts).
 * Doubtful holds are counted and reported (held-report.ts).
 */

import { ipamClaimNames } from "../ipam/multus-network.ts";
import type { ControllerApi, WatchKind } from "../kube/controller-api.ts";
import type { ClaimObject, PodObject } from "../kube/kube-api.ts";
import { halfFinishedAt } from "../reconcile/claim-age.ts";
import type { Reader, Verdict } from "../reconcile/judge-claim.ts";
import { reconcilePool } from "../reconcile/pool-reconcile.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import { actOnClaim } from "./act-on-claim.ts";
import { ClaimView } from "./claim-view.ts";
import { fullScan, type ScanHost } from "./full-scan.ts";
import { guardWrites } from "./guarded-api.ts";
import { HeldReport } from "./held-report.ts";
import { DEFAULT_LEADER_TIMING, LeaderElector, NotLeaderError } from "./leader.ts";
import { Metrics } from "./metrics.ts";
import { serveMetrics } from "./metrics-server.ts";
import { periodicCheck } from "./periodic-check.ts";
import { slimClaim } from "./slim.ts";
import { watchForever } from "./watch-loop.ts";
import { WorkQueue } from "./work-queue.ts";

export interface ControllerOptions {
  kubeconfig?: string;
  /** host:port for /healthz and /metrics. */
  listen: string;
  resyncMs: number;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  addTimeoutMs: number;
  /** Time after a pod's deletion deadline from which a pod still Terminating is reported as held. */
  graceMarginMs: number;
  /** Objects per LIST request of a full scan. */
  listPageSize?: number;
  /** Time between periodic checks (berth check's, for the metrics); 0: none. */
  checkIntervalMs?: number;
}

/**
 * A pool's status is written at most once per this window after a change of
 * its claims (or of the pool): a burst of ADDs costs one GET and one PATCH
 * per pool and window, not one per claim, and a count is at most this much
 * (plus the queue ahead of it) behind the claims.
 */
export const POOL_WRITE_WINDOW_MS = 500;

/** What the controller watches: pools replayed (few), the others from the present (the full scans find what exists). */
const WATCHED: WatchKind[] = ["claims", "pods", "statefulsets", "endpoints", "nodes", "pools"];

export class Controller {
  readonly metrics = new Metrics();
  readonly view: ClaimView;
  readonly held = new HeldReport();
  private readonly work: WorkQueue;
  private stopped = false;
  /** Set when the controller stopped because it could not work (exit non-zero). */
  failed = false;
  /** The leadership term in which a full scan listed (and judged) every claim: only then is the view complete. */
  syncedTerm = -1;
  everScanned = false;
  readonly elector: LeaderElector;
  /** The API for writes: each one checks leadership right before it is sent. */
  readonly writer: ControllerApi;
  private sleepers = new Set<() => void>();
  /** Kinds whose watch has its first version: a change after it is an event, not left to the next scan. */
  private readonly watching = new Set<WatchKind>();

  constructor(
    readonly api: ControllerApi,
    readonly opts: ControllerOptions,
    readonly log: Logger,
  ) {
    this.elector = new LeaderElector(api, opts.leaseNamespace, opts.leaseName, opts.identity);
    this.writer = guardWrites(api, (what) => this.elector.check(what));
    this.view = new ClaimView(() => api.serverNow());
    this.work = new WorkQueue(
      (key) => this.handle(key),
      () => this.elector.isLeader,
      () => api.serverNow(),
      log,
    );
  }

  /**
   * Starts everything; resolves soon after stop() is called, having handed
   * the lease over. A full scan still running then is not waited for (on a
   * big cluster its lists may outlast the pod's termination grace period):
   * it can send nothing more, the lease being given up first.
   */
  async run(): Promise<void> {
    const server = serveMetrics(
      this.opts.listen,
      () => {
        this.metrics.leader = this.elector.isLeader;
        return this.metrics.render();
      },
      this.log,
      () => {
        this.failed = true;
        this.stop();
      },
    );
    const host = {
      api: this.api,
      stopped: () => this.stopped,
      sleep: (ms: number) => this.sleep(ms),
      onEvent: (kind: WatchKind, type: string, obj: { metadata: { name: string; namespace?: string } }) => this.onEvent(kind, type, obj),
      // Claim events were missed: the view is incomplete until the next full scan (due within 5 s).
      onMissed: (kind: WatchKind) => {
        if (kind === "claims") this.syncedTerm = -1;
      },
      onStarted: (kind: WatchKind) => this.watching.add(kind),
    };
    for (const kind of WATCHED) void watchForever(host, kind, kind === "pools"); // pools, few: replayed, so each gets its finalizer early
    void watchForever({ ...host, sleep: (ms: number) => this.sleep(Math.max(ms, 5000)), onStarted: undefined }, "ipamclaims"); // not berth's CRD: retried, not awaited
    void this.scanLoop();
    await this.leaseLoop();
    await this.elector.release();
    server.close();
  }

  /** Throws NotLeaderError unless this replica leads right now. */
  readonly checkLeader = (what: string): void => this.elector.check(what);

  stop(): void {
    this.stopped = true;
    this.work.stop();
    for (const wake of this.sleepers) wake();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Renews (or tries to take) the lease every 2 s, whatever the scans are doing. */
  private async leaseLoop(): Promise<void> {
    let was = false;
    while (!this.stopped) {
      const leader = await this.elector.tick();
      if (leader !== was) this.log.info(leader ? "became leader" : "lost leadership", { identity: this.opts.identity, term: this.elector.term });
      was = leader;
      await this.sleep(DEFAULT_LEADER_TIMING.retryMs);
    }
  }

  /** Runs a full scan on each new term of leadership and every resync interval while leading. */
  private async scanLoop(): Promise<void> {
    let lastScan = -Infinity;
    let scannedTerm = -1;
    let lastCheck = -Infinity;
    // Watches first, lists after (as an informer does): a change between a scan's list and a watch's start would
    // otherwise wait for the next scan. A watch that cannot start delays the first scan by 10 s at most.
    const started = performance.now();
    while (!this.stopped && this.watching.size < WATCHED.length && performance.now() - started < 10_000) await this.sleep(50);
    while (!this.stopped) {
      if (this.elector.isLeader) {
        const term = this.elector.term;
        const since = performance.now() - lastScan;
        // A scan whose claims list failed is retried soon: until one succeeds, nothing is complete.
        const due = term !== scannedTerm || since >= this.opts.resyncMs || (this.syncedTerm !== term && since >= 5000);
        if (due) {
          lastScan = performance.now();
          scannedTerm = term;
          await fullScan(this as ScanHost, term).catch((err) => {
            if (this.stopped) this.log.info("full scan interrupted: stopping");
            else if (isKind(err, NotLeaderError)) this.log.warn("full scan stopped: no longer the leader", { identity: this.opts.identity });
            else this.log.error("full scan failed", { error: (err as Error).message });
          });
        }
        // The periodic check, after a scan and never beside one (periodic-check.ts).
        const every = this.opts.checkIntervalMs ?? 0;
        if (every > 0 && performance.now() - lastCheck >= every && !this.stopped) {
          lastCheck = performance.now();
          await periodicCheck(this.api, this.opts.listPageSize ?? 500, this.opts.addTimeoutMs, this.metrics, this.log).catch((err) =>
            this.log.warn("periodic check failed; tried again at the next interval", { error: (err as Error).message }),
          );
        }
      }
      await this.sleep(250);
    }
  }

  /** Sleeps `ms`, or less when the controller is stopped. */
  sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const wake = () => {
        clearTimeout(t);
        this.sleepers.delete(wake);
        r();
      };
      const t = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /**
   * Writes the pool's status (and finalizer) within POOL_WRITE_WINDOW_MS:
   * counts are derived from the watch, never from a LIST per change.
   */
  schedulePool(pool: string | undefined): void {
    if (pool) this.work.coalesce(`pool:${pool}`, POOL_WRITE_WINDOW_MS);
  }

  private onEvent(kind: WatchKind, type: string, obj: { metadata: { name: string; namespace?: string } }): void {
    const m = obj.metadata;
    const podKey = `pod:${m.namespace}/${m.name}`;
    if (kind === "claims") {
      const claim = obj as ClaimObject;
      const before = this.view.get(m.name)?.spec.pool;
      if (before !== claim.spec?.pool) this.schedulePool(before); // moved to another pool (never done by berth, but counted right)
      if (type === "DELETED") this.view.delete(m.name);
      else {
        if (type === "ADDED" && this.everScanned && !this.view.has(m.name)) this.metrics.allocations++;
        const slim = slimClaim(claim);
        this.view.put(slim);
        // A claim not bound within its ADD's window, whose pod is gone, is a half-finished ADD: look again then.
        // Only for claims written lately: the full scans cover old ones. One that says it was updated since its
        // creation, replayed (should a watch ever start without a version), is left to the scans too.
        const replayedUpdate = type === "ADDED" && (claim.metadata.generation ?? 1) > 1;
        const due = halfFinishedAt(this.view.observe(slim), this.opts.addTimeoutMs);
        if (!replayedUpdate && due !== undefined && due + 1000 > this.api.serverNow() - 5000) this.work.at(`claim:${m.name}`, due + 1000);
      }
      this.schedulePool(claim.spec?.pool);
    } else if (kind === "pods") {
      // Gone: its claims may go (and those of the IPAMClaims it names: a migration's source may be the last holder).
      // Finished: they may go where the kubelet stops the sandbox first (judge-claim.ts).
      const phase = (obj as PodObject).status?.phase;
      if (type !== "DELETED" && phase !== "Succeeded" && phase !== "Failed") return;
      this.work.enqueue(podKey);
      for (const ref of ipamClaimNames((obj as PodObject).metadata.annotations, m.namespace ?? "")) this.work.enqueue(`ipamref:${m.namespace}/${ref}`);
    } else if (kind === "ipamclaims") {
      if (type === "DELETED" && (obj as PodObject).metadata.uid) this.work.enqueue(`ipamclaim:${(obj as PodObject).metadata.uid}`);
    } else if (kind === "endpoints") {
      // An endpoint deleted under a pod that still holds addresses is written back (endpoint-repair.ts).
      if (type === "DELETED") this.work.enqueue(podKey);
    } else if (kind === "statefulsets") {
      if (type !== "ADDED") this.work.enqueue(`sts:${m.namespace}/${m.name}`);
    } else if (kind === "pools") {
      this.schedulePool(m.name);
    } else if (kind === "nodes") {
      // A static pod's address goes with its node.
      if (type === "DELETED") this.work.enqueue(`node:${m.name}`);
    }
  }

  /** Whether this replica's view of the claims is complete: it leads, and listed every claim in this term. */
  get synced(): boolean {
    return this.elector.isLeader && this.syncedTerm === this.elector.term;
  }

  private async handle(key: string): Promise<void> {
    const [kind, id] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    if (kind === "pool") return this.reconcilePool(id);
    for (const c of this.view.claimsOfKey(kind, id)) await this.act(c, this.api);
  }

  /** Reconciles one pool; before the first full scan of this term the view is incomplete: only the finalizer is added then. */
  reconcilePool(name: string): Promise<void> {
    const synced = this.synced;
    return reconcilePool(this.writer, name, { claimed: synced ? this.view.claimedIn(name) : undefined, mayRemoveFinalizer: synced }, this.log, this.metrics);
  }

  /** Judges the claim on `reader` and acts on the verdict (act-on-claim.ts). */
  act(claim: ClaimObject, reader: Reader): Promise<Verdict | undefined> {
    return actOnClaim(this, claim, reader);
  }
}
