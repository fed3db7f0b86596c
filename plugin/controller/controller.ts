/**
 * `berth controller`: the long-running reconciler. One replica acts at a time
 * (Lease, renewed on its own timer: leader.ts). It watches claims, pods,
 * StatefulSets, pools and nodes, reacts to each change, and runs a full scan
 * on taking the lead and every resync interval. Every release is decided
 * twice: on what it saw, then on a live re-read; every write checks, right
 * before it is sent, that this replica still leads (guarded-api.ts).
 */
import { createServer } from "node:http";
import type { ClaimObject, PodObject } from "../kube/kube-api.ts";
import { createControllerClient } from "../kube/controller-client.ts";
import type { Logger } from "../support/logger.ts";
import type { ControllerApi, NodeObject, WatchKind } from "../kube/controller-api.ts";
import { isKind } from "../support/errors.ts";
import { faultValue } from "../support/faults.ts";
import { halfFinishedAt, withObservation } from "./claim-age.ts";
import { collectGarbage } from "./collect-garbage.ts";
import { guardWrites } from "./guarded-api.ts";
import { type Reader, judgeClaim, nodeState } from "./judge-claim.ts";
import { DEFAULT_LEADER_TIMING, LeaderElector, NotLeaderError } from "./leader.ts";
import { Metrics } from "./metrics.ts";
import { reconcilePool } from "./pool-reconcile.ts";
import { releaseJudgedClaim } from "./release-claim.ts";
import { IncompleteListError, takeSnapshot } from "./scan-snapshot.ts";
import { slimClaim } from "./slim.ts";

export interface ControllerOptions {
  kubeconfig?: string;
  /** host:port for /healthz and /metrics. */
  listen: string;
  resyncMs: number;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  addTimeoutMs: number;
  graceMarginMs: number;
  /** Release Terminating pods past their grace period on nodes that are not Ready too (off by default: kept). */
  releaseTerminatingOnUnreadyNodes?: boolean;
  /** Objects per LIST request of a full scan. */
  listPageSize?: number;
}

const podKey = (ns: string | undefined, name: string) => `${ns}/${name}`;
/** Claims judged between forced collections in a full scan. */
const JUDGED_PER_GC = 10_000;

/**
 * A pool's status is written at most once per this window after a change of
 * its claims (or of the pool): a burst of ADDs costs one GET and one PATCH
 * per pool and window, not one per claim, and a count is at most this much
 * (plus the queue ahead of it) behind the claims. Not a trailing debounce: a
 * steady stream of changes still gets a write every window.
 */
export const POOL_WRITE_WINDOW_MS = 500;

export class Controller {
  readonly metrics = new Metrics();
  /** Every claim as last seen (slim), by name; and the claim names of each pod (one name, or a set when more). */
  private readonly claims = new Map<string, ClaimObject>();
  private readonly byPod = new Map<string, string | Set<string>>();
  /** How many claims of the view name each pool: kept with `claims`, so a pool's count never needs a rescan. */
  private readonly poolClaims = new Map<string, number>();
  /** Pools with a status write scheduled (POOL_WRITE_WINDOW_MS). */
  private readonly poolDue = new Set<string>();
  /**
   * While a full scan lists, the claim events that arrive (name → the claim,
   * or null when deleted): replayed over the scan's snapshot, so a claim
   * created or deleted while the pages were read is not lost from the view
   * (and from its pool's count) until the next scan.
   */
  private journal: Map<string, ClaimObject | null> | undefined;
  /** Pods being deleted (namespace/name → node), to look at again when their node becomes Ready. */
  private readonly terminating = new Map<string, string>();
  private readonly nodeReady = new Map<string, boolean>();
  /** Claims changed since their creation: when (server time) this replica first saw their current generation. */
  private readonly observed = new Map<string, { uid?: string; generation: number; at: number }>();
  private readonly queue = new Set<string>();
  private draining = false;
  private stopped = false;
  /** Set when the controller stopped because it could not work (exit non-zero). */
  failed = false;
  /** The leadership term in which a full scan listed (and judged) every claim: only then is the view complete. */
  private syncedTerm = -1;
  private everScanned = false;
  private readonly elector: LeaderElector;
  /** The API for writes: each one checks leadership right before it is sent. */
  private readonly writer: ControllerApi;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private sleepers = new Set<() => void>();

  constructor(
    readonly api: ControllerApi,
    readonly opts: ControllerOptions,
    readonly log: Logger,
  ) {
    this.elector = new LeaderElector(api, opts.leaseNamespace, opts.leaseName, opts.identity);
    this.writer = guardWrites(api, (what) => this.elector.check(what));
  }

  /**
   * Starts everything; resolves soon after stop() is called, having handed
   * the lease over. A full scan still running then is not waited for (on a
   * big cluster its lists may outlast the pod's termination grace period):
   * it can send nothing more, the lease being given up first.
   */
  async run(): Promise<void> {
    const server = this.serve();
    for (const kind of ["claims", "pods", "statefulsets", "pools", "nodes"] as WatchKind[]) void this.watchForever(kind);
    void this.scanLoop();
    await this.leaseLoop();
    await this.elector.release();
    server.close();
  }

  /** Throws NotLeaderError unless this replica leads right now. */
  checkLeader(what: string): void {
    this.elector.check(what);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const wake of this.sleepers) wake();
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
    while (!this.stopped) {
      if (this.elector.isLeader) {
        const term = this.elector.term;
        const since = performance.now() - lastScan;
        // A scan whose claims list failed is retried soon: until one succeeds, nothing is complete.
        const due = term !== scannedTerm || since >= this.opts.resyncMs || (this.syncedTerm !== term && since >= 5000);
        if (due) {
          lastScan = performance.now();
          scannedTerm = term;
          await this.fullScan(term).catch((err) => {
            if (this.stopped) this.log.info("full scan interrupted: stopping");
            else if (isKind(err, NotLeaderError)) this.log.warn("full scan stopped: no longer the leader", { identity: this.opts.identity });
            else this.log.error("full scan failed", { error: (err as Error).message });
          });
        }
      }
      await this.sleep(250);
    }
  }

  /** Sleeps `ms`, or less when the controller is stopped. */
  private sleep(ms: number): Promise<void> {
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

  /** Looks at `key` again at `atServerMs` (the API server's clock). */
  private later(key: string, atServerMs: number): void {
    const t = setTimeout(() => (this.timers.delete(t), this.enqueue(key)), Math.min(2 ** 31 - 1, Math.max(0, atServerMs - this.api.serverNow())));
    this.timers.add(t);
  }

  private serve() {
    const [host, port] = splitHostPort(this.opts.listen);
    const server = createServer((req, res) => {
      if (req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (req.url === "/metrics") {
        this.metrics.leader = this.elector.isLeader;
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(this.metrics.render());
      } else {
        res.writeHead(404).end();
      }
    });
    server.on("error", (err) => {
      this.log.error("cannot serve /healthz and /metrics; stopping", { listen: this.opts.listen, error: err.message });
      this.failed = true;
      this.stop();
    });
    server.listen(port, host, () => this.log.info("serving /healthz and /metrics", { listen: this.opts.listen }));
    return server;
  }

  /**
   * Keeps one watch of `kind` open, reopening it where it ended. Claims, pods
   * and StatefulSets are watched from the present: the full scans find what
   * exists, and a replay of every one of them (at start, and each time the
   * server ends a watch) was the controller's biggest burst of memory on a
   * big cluster. Pools and nodes, few, replay (nodes fill the readiness map).
   * When the server has forgotten the version (410 Gone), events were missed:
   * the claims view counts as incomplete until the next scan, due within 5 s.
   */
  private async watchForever(kind: WatchKind): Promise<void> {
    const fromNow = kind === "claims" || kind === "pods" || kind === "statefulsets";
    let rv: string | undefined;
    let missed = false;
    while (!this.stopped) {
      if (rv === undefined && fromNow) {
        rv = await this.api.collectionVersion(kind).catch(() => undefined);
        if (rv === undefined) {
          await this.sleep(1000);
          continue;
        }
        if (missed && kind === "claims") this.syncedTerm = -1;
      }
      rv = (await this.api.watch(kind, (type, obj) => this.onEvent(kind, type, obj), rv).catch(() => ({ resourceVersion: rv }))).resourceVersion;
      missed = rv === undefined;
      await this.sleep(1000);
    }
  }

  /**
   * `claim` as the judgement must see it: a claim updated since its creation
   * (re-taken by a new sandbox) counts as written no earlier than when this
   * replica first saw that generation (claim-age.ts).
   */
  private observe(claim: ClaimObject): ClaimObject {
    const { name, uid, generation = 1 } = claim.metadata;
    if (generation <= 1) {
      this.observed.delete(name);
      return claim;
    }
    let seen = this.observed.get(name);
    if (!seen || seen.uid !== uid || seen.generation !== generation) {
      seen = { uid, generation, at: this.api.serverNow() };
      this.observed.set(name, seen);
    }
    return withObservation(claim, seen.at);
  }

  private remember(input: ClaimObject): void {
    const claim = this.observe(input);
    const name = claim.metadata.name;
    const old = this.claims.get(name);
    if (old) this.unindex(old);
    this.claims.set(name, claim);
    this.countIn(claim.spec.pool, 1);
    const k = podKey(claim.spec.podNamespace, claim.spec.podName);
    const names = this.byPod.get(k);
    if (names === undefined) this.byPod.set(k, name);
    else if (typeof names === "string") this.byPod.set(k, names === name ? name : new Set([names, name]));
    else names.add(name);
  }

  private unindex(claim: ClaimObject): void {
    this.countIn(claim.spec.pool, -1);
    const k = podKey(claim.spec.podNamespace, claim.spec.podName);
    const names = this.byPod.get(k);
    if (typeof names === "string") {
      if (names === claim.metadata.name) this.byPod.delete(k);
    } else if (names) {
      names.delete(claim.metadata.name);
      if (names.size === 0) this.byPod.delete(k);
    }
  }

  private countIn(pool: string, delta: number): void {
    const n = (this.poolClaims.get(pool) ?? 0) + delta;
    if (n > 0) this.poolClaims.set(pool, n);
    else this.poolClaims.delete(pool);
  }

  /**
   * Writes the pool's status (and finalizer) within POOL_WRITE_WINDOW_MS:
   * counts are derived from the watch, never from a LIST per change. Old
   * (0.3) plugins still write counts after their ADDs; their writes arrive
   * as pool events and are overwritten here with the controller's count.
   */
  private schedulePool(pool: string | undefined): void {
    if (!pool || this.stopped || this.poolDue.has(pool)) return;
    this.poolDue.add(pool);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.poolDue.delete(pool);
      this.enqueue(`pool:${pool}`);
    }, POOL_WRITE_WINDOW_MS);
    this.timers.add(t);
  }

  private claimsOfPod(k: string): ClaimObject[] {
    const names = this.byPod.get(k);
    const list = names === undefined ? [] : typeof names === "string" ? [names] : [...names];
    return list.map((n) => this.claims.get(n)).filter((c): c is ClaimObject => !!c);
  }

  private forget(name: string): void {
    this.observed.delete(name);
    const old = this.claims.get(name);
    if (!old) return;
    this.claims.delete(name);
    this.unindex(old);
  }

  private onEvent(kind: WatchKind, type: string, obj: { metadata: { name: string; namespace?: string } }): void {
    const m = obj.metadata;
    if (kind === "claims") {
      const claim = obj as ClaimObject;
      this.journal?.set(m.name, type === "DELETED" ? null : slimClaim(claim));
      const before = this.claims.get(m.name)?.spec.pool;
      if (before !== claim.spec?.pool) this.schedulePool(before); // moved to another pool (never done by berth, but counted right)
      if (type === "DELETED") this.forget(m.name);
      else {
        if (type === "ADDED" && this.everScanned && !this.claims.has(m.name)) this.metrics.allocations++;
        this.remember(slimClaim(claim));
        // A claim not bound within its ADD's window is a half-finished ADD: look again then (server time). Only
        // for claims written lately: the full scans cover old ones (re-checking all of them live cost ~10x a
        // full scan, measured in BENCHMARKS.md). Claims are watched from the present, so ADDED is a new claim;
        // one that says it was updated since its creation (a replay, should a watch ever start without a
        // version) would look new (its age counts from now, claim-age.ts): left to the scans too.
        const replayedUpdate = type === "ADDED" && (claim.metadata.generation ?? 1) > 1;
        const due = halfFinishedAt(this.claims.get(m.name)!, this.opts.addTimeoutMs);
        if (!replayedUpdate && due !== undefined && due + 1000 > this.api.serverNow() - 5000) this.later(`claim:${m.name}`, due + 1000);
      }
      this.schedulePool(claim.spec?.pool);
    } else if (kind === "pods") {
      const pod = obj as PodObject;
      const key = `pod:${podKey(m.namespace, m.name)}`;
      if (type === "DELETED") {
        this.terminating.delete(podKey(m.namespace, m.name));
        this.enqueue(key);
      } else if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") {
        this.enqueue(key);
      } else if (pod.metadata.deletionTimestamp) {
        this.terminating.set(podKey(m.namespace, m.name), pod.spec?.nodeName ?? "");
        this.later(key, Date.parse(pod.metadata.deletionTimestamp) + this.opts.graceMarginMs + 500);
      }
    } else if (kind === "statefulsets") {
      if (type !== "ADDED") this.enqueue(`sts:${m.namespace}/${m.name}`);
    } else if (kind === "pools") {
      this.schedulePool(m.name);
    } else if (kind === "nodes") {
      const was = this.nodeReady.get(m.name);
      if (type === "DELETED") {
        this.nodeReady.delete(m.name);
        return;
      }
      const ready = nodeState(obj as NodeObject) === "Ready";
      this.nodeReady.set(m.name, ready);
      // Terminating pods kept because their node was cut off: their node is back, judge them again.
      if (ready && was === false) {
        for (const [pod, node] of this.terminating) if (node === m.name || node === "") this.enqueue(`pod:${pod}`);
      }
    }
  }

  private enqueue(key: string): void {
    if (this.stopped) return;
    this.queue.add(key);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.size) {
        const key = this.queue.values().next().value as string;
        this.queue.delete(key);
        if (!this.elector.isLeader) continue; // followers only watch; the next leader's full scan catches up
        await this.handle(key).catch((err) => {
          if (isKind(err, NotLeaderError)) return;
          this.log.warn("reconcile failed; retried on the next scan", { key, error: (err as Error).message });
        });
      }
    } finally {
      this.draining = false;
    }
  }

  /** Whether this replica's view of the claims is complete: it leads, and listed every claim in this term. */
  private get synced(): boolean {
    return this.elector.isLeader && this.syncedTerm === this.elector.term;
  }

  private claimedIn(pool: string): number {
    return this.poolClaims.get(pool) ?? 0;
  }

  private async handle(key: string): Promise<void> {
    const [kind, id] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    let targets: ClaimObject[] = [];
    if (kind === "claim") targets = this.claims.has(id) ? [this.claims.get(id)!] : [];
    else if (kind === "pod") targets = this.claimsOfPod(id);
    else if (kind === "sts") targets = [...this.claims.values()].filter((c) => c.spec.statefulSet && `${c.spec.podNamespace}/${c.spec.statefulSet}` === id);
    else if (kind === "pool") {
      // Before the first full scan of this term the view is incomplete: the finalizer is only added then.
      const synced = this.synced;
      await reconcilePool(this.writer, id, { claimed: synced ? this.claimedIn(id) : undefined, mayRemoveFinalizer: synced }, this.log, this.metrics);
      return;
    }
    for (const c of targets) await this.judgeAndRelease(c, this.api);
  }

  /** Judges on `reader`; a release verdict is confirmed on the live API server before it is carried out. Returns whether it released. */
  private async judgeAndRelease(claim: ClaimObject, reader: Reader): Promise<boolean> {
    const opts = {
      addTimeoutMs: this.opts.addTimeoutMs,
      graceMarginMs: this.opts.graceMarginMs,
      releaseTerminatingOnUnreadyNodes: this.opts.releaseTerminatingOnUnreadyNodes ?? false,
      now: this.api.serverNow(),
    };
    const first = await judgeClaim(reader, claim, opts);
    if (!first.release) return false;
    const live = await this.api.getClaim(claim.metadata.name);
    if (!live) return false;
    const verdict =
      reader === this.api && live.metadata.resourceVersion === claim.metadata.resourceVersion
        ? first
        : await judgeClaim(this.api, this.observe(live), { ...opts, now: this.api.serverNow() });
    if (!verdict.release) return false;
    if (await releaseJudgedClaim(this.writer, live, verdict, this.log, this.metrics)) {
      this.forget(live.metadata.name);
      this.schedulePool(live.spec.pool);
      return true;
    }
    return false;
  }

  /**
   * Judges every claim on one set of paged lists, then reconciles every pool.
   * Stops (NotLeaderError) as soon as this replica no longer leads in `term`.
   */
  async fullScan(term: number): Promise<void> {
    const t0 = performance.now();
    const pageSize = this.opts.listPageSize ?? 500;
    this.journal = new Map();
    let journal: Map<string, ClaimObject | null>;
    let snap: Awaited<ReturnType<typeof takeSnapshot>>;
    try {
      snap = await takeSnapshot(this.api, pageSize, (name) => this.claims.get(name));
    } finally {
      journal = this.journal;
      this.journal = undefined;
    }
    this.log.debug("full scan: lists taken", { claims: snap.claims?.length, seconds: ((performance.now() - t0) / 1000).toFixed(3) });
    // The pages' garbage goes before the views are rebuilt on top of it.
    collectGarbage();
    for (const [kind, n] of snap.requests) this.metrics.listed(kind, n);
    for (const [kind, err] of snap.failed) {
      this.metrics.listed(kind, undefined);
      this.log.warn("full scan: list failed; what needs it waits for the next scan", { kind, error: err.message });
    }
    this.elector.check("full scan", term);
    const first = !this.everScanned;
    // Terminating pods are not replayed by their watch: the scan hands them over, to be looked at again when
    // their deletion deadline has passed or their node is back.
    const now = this.api.serverNow();
    for (const [pod, t] of snap.terminating) {
      this.terminating.set(pod, t.node);
      const due = Date.parse(t.deletion) + this.opts.graceMarginMs + 500;
      if (due > now) this.later(`pod:${pod}`, due); // past it: this scan judges it
    }
    if (snap.claims) {
      this.claims.clear();
      this.byPod.clear();
      this.poolClaims.clear();
      const listed = new Set(snap.claims.map((c) => c.metadata.name));
      for (const name of this.observed.keys()) if (!listed.has(name)) this.observed.delete(name);
      for (const c of snap.claims) this.remember(c);
      this.replay(journal);
      this.everScanned = true;
    }
    let released = 0;
    let undecided = 0;
    let judged = 0;
    for (const c of snap.claims ?? []) {
      if (this.stopped) return;
      this.elector.check("full scan", term);
      try {
        if (await this.judgeAndRelease(this.observe(c), snap.reader)) released++;
      } catch (err) {
        if (isKind(err, NotLeaderError)) throw err;
        if (isKind(err, IncompleteListError)) undecided++;
        else this.log.warn("reconcile failed", { claim: c.metadata.name, error: (err as Error).message });
      }
      if (++judged === 1 && first) await this.pauseForTests();
      // Judging leaves garbage per claim (pod and endpoint views, promises): collected as it goes, so the
      // peak stays near the live data rather than the engine's next growth step (measured at 50,000 claims).
      if (judged % JUDGED_PER_GC === 0) collectGarbage();
    }
    this.log.debug("full scan: claims judged", { released, undecided, seconds: ((performance.now() - t0) / 1000).toFixed(3) });
    // Every claim was listed and judged in this term: the view is complete (finalizers may go, on a fresh read).
    if (snap.claims) this.syncedTerm = term;
    for (const p of snap.pools ?? []) {
      this.elector.check("full scan", term);
      const name = p.metadata.name;
      await reconcilePool(
        this.writer,
        name,
        { claimed: snap.claims ? this.claimedIn(name) : undefined, mayRemoveFinalizer: this.synced },
        this.log,
        this.metrics,
      ).catch((err) => {
        if (isKind(err, NotLeaderError)) throw err;
        this.log.warn("pool reconcile failed", { pool: name, error: (err as Error).message });
      });
    }
    this.metrics.claims = this.claims.size;
    const seconds = (performance.now() - t0) / 1000;
    this.metrics.reconciled(seconds);
    collectGarbage();
    const listRequests = [...snap.requests.values()].reduce((a, b) => a + b, 0);
    this.log.info("full scan done", {
      claims: snap.claims?.length ?? "unknown",
      released,
      undecided,
      incomplete: snap.failed.size ? [...snap.failed.keys()].join(",") : undefined,
      listRequests,
      seconds: seconds.toFixed(3),
    });
  }

  /** Applies the claim events seen while the snapshot was listed, unless the snapshot holds a newer version. */
  private replay(journal: Map<string, ClaimObject | null>): void {
    for (const [name, claim] of journal) {
      const listed = this.claims.get(name);
      if (claim === null) {
        this.forget(name);
      } else if (!listed || listed.metadata.uid !== claim.metadata.uid || !newerOrSame(listed, claim)) {
        this.remember(claim);
      }
    }
  }

  /** BERTH_FAULT=pause-scan=SECONDS: the first full scan stops that long after judging its first claim. */
  private async pauseForTests(): Promise<void> {
    const seconds = Number(faultValue("pause-scan"));
    if (!(seconds > 0)) return;
    this.log.warn("full scan paused (BERTH_FAULT=pause-scan)", { seconds });
    await this.sleep(seconds * 1000);
    this.log.warn("full scan resumes (BERTH_FAULT=pause-scan)", {});
  }
}

/** Whether `a` is the same version of the object as `b`, or a later one (resourceVersions of one object, compared as etcd revisions). */
function newerOrSame(a: ClaimObject, b: ClaimObject): boolean {
  const [x, y] = [Number(a.metadata.resourceVersion), Number(b.metadata.resourceVersion)];
  return Number.isFinite(x) && Number.isFinite(y) ? x >= y : a.metadata.resourceVersion === b.metadata.resourceVersion;
}

function splitHostPort(listen: string): [string, number] {
  const i = listen.lastIndexOf(":");
  return [listen.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0", Number(listen.slice(i + 1))];
}

/** Builds a controller from options (kubeconfig file, or in-cluster configuration when none). */
export function createController(opts: ControllerOptions, log: Logger): Controller {
  // Every write but the Lease's checks leadership in the transport too, as late as it can: after the
  // request's credentials are applied, right before it is sent.
  let controller: Controller | undefined;
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.leaseNamespace)}/leases`;
  const api = createControllerClient(opts.kubeconfig, {
    requestTimeoutMs: 10_000,
    beforeWrite: (what, _method, path) => {
      if (!path.startsWith(leasePath)) controller?.checkLeader(what);
    },
  });
  controller = new Controller(api, opts, log);
  return controller;
}
