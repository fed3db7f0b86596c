/**
 * `berth controller`: the long-running reconciler. One replica acts at a time
 * (Lease). It watches claims, pods, StatefulSets and pools, reacts to each
 * change, and runs a full scan on taking the lead and every resync interval.
 * Every release is decided twice: on what it saw, then on a live re-read.
 */
import { createServer } from "node:http";
import type { ClaimObject, EndpointObject, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { createControllerClient } from "../kube/kube-client.ts";
import type { Logger } from "../support/logger.ts";
import type { ControllerApi, WatchKind } from "../kube/controller-api.ts";
import { type Reader, judgeClaim } from "./judge-claim.ts";
import { LeaderElector } from "./leader.ts";
import { Metrics } from "./metrics.ts";
import { reconcilePool } from "./pool-reconcile.ts";
import { releaseJudgedClaim } from "./release-claim.ts";

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
}

export class Controller {
  readonly metrics = new Metrics();
  private readonly claims = new Map<string, ClaimObject>();
  private readonly queue = new Set<string>();
  private draining = false;
  private stopped = false;
  /** Set when the controller stopped because it could not work (exit non-zero). */
  failed = false;
  private synced = false;
  private readonly elector: LeaderElector;
  private timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(readonly api: ControllerApi, readonly opts: ControllerOptions, readonly log: Logger) {
    this.elector = new LeaderElector(api, opts.leaseNamespace, opts.leaseName, opts.identity);
  }

  /** Starts everything; resolves when stop() is called. */
  async run(): Promise<void> {
    const server = this.serve();
    for (const kind of ["claims", "pods", "statefulsets", "pools"] as WatchKind[]) void this.watchForever(kind);
    let wasLeader = false;
    let lastScan = 0;
    while (!this.stopped) {
      const leader = await this.elector.tick();
      this.metrics.leader = leader;
      if (leader !== wasLeader) this.log.info(leader ? "became leader" : "lost leadership", { identity: this.opts.identity });
      if (leader && (!wasLeader || Date.now() - lastScan >= this.opts.resyncMs)) {
        lastScan = Date.now();
        await this.fullScan().catch((err) => this.log.error("full scan failed", { error: (err as Error).message }));
      }
      wasLeader = leader;
      await this.sleep(2000);
    }
    await this.elector.release();
    server.close();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const wake of this.sleepers) wake();
  }

  private sleepers = new Set<() => void>();

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

  private later(key: string, atMs: number): void {
    const t = setTimeout(() => (this.timers.delete(t), this.enqueue(key)), Math.max(0, atMs - Date.now()));
    this.timers.add(t);
  }

  private serve() {
    const [host, port] = splitHostPort(this.opts.listen);
    const server = createServer((req, res) => {
      if (req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (req.url === "/metrics") {
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

  /** Keeps one watch of `kind` open, reopening it when the server ends it. */
  private async watchForever(kind: WatchKind): Promise<void> {
    while (!this.stopped) {
      await this.api.watch(kind, (type, obj) => this.onEvent(kind, type, obj)).catch(() => undefined);
      await this.sleep(1000);
    }
  }

  private onEvent(kind: WatchKind, type: string, obj: { metadata: { name: string; namespace?: string } }): void {
    const m = obj.metadata;
    if (kind === "claims") {
      const claim = obj as ClaimObject;
      if (type === "DELETED") this.claims.delete(m.name);
      else {
        if (type === "ADDED" && this.synced && !this.claims.has(m.name)) this.metrics.allocations++;
        this.claims.set(m.name, claim);
        // A claim not bound within the ADD timeout is a half-finished ADD: look again then. Only for
        // claims that are new: a watch (re)opening replays every claim, and the full scans cover old ones
        // (re-checking all of them live cost ~10x a full scan, measured in BENCHMARKS.md).
        const due = Date.parse(claim.spec.claimedAt) + this.opts.addTimeoutMs + 1000;
        if (due > Date.now() - 5000) this.later(`claim:${m.name}`, due);
      }
      this.enqueue(`pool:${claim.spec?.pool}`);
    } else if (kind === "pods") {
      const pod = obj as PodObject;
      const key = `pod:${m.namespace}/${m.name}`;
      if (type === "DELETED" || pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") this.enqueue(key);
      else if (pod.metadata.deletionTimestamp) this.later(key, Date.parse(pod.metadata.deletionTimestamp) + this.opts.graceMarginMs + 500);
    } else if (kind === "statefulsets") {
      if (type !== "ADDED") this.enqueue(`sts:${m.namespace}/${m.name}`);
    } else if (kind === "pools") {
      this.enqueue(`pool:${m.name}`);
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
        await this.handle(key).catch((err) => this.log.warn("reconcile failed; retried on the next scan", { key, error: (err as Error).message }));
      }
    } finally {
      this.draining = false;
    }
  }

  private async handle(key: string): Promise<void> {
    const [kind, id] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
    const all = [...this.claims.values()];
    let targets: ClaimObject[] = [];
    if (kind === "claim") targets = this.claims.has(id) ? [this.claims.get(id)!] : [];
    else if (kind === "pod") targets = all.filter((c) => `${c.spec.podNamespace}/${c.spec.podName}` === id);
    else if (kind === "sts") targets = all.filter((c) => c.spec.statefulSet && `${c.spec.podNamespace}/${c.spec.statefulSet}` === id);
    else if (kind === "pool") {
      await reconcilePool(this.api, id, all.filter((c) => c.spec.pool === id).length, this.log, this.metrics);
      return;
    }
    for (const c of targets) await this.judgeAndRelease(c, this.api);
  }

  /** Judges on `reader`; a release verdict is confirmed on the live API server before it is carried out. */
  private async judgeAndRelease(claim: ClaimObject, reader: Reader): Promise<void> {
    const opts = { addTimeoutMs: this.opts.addTimeoutMs, graceMarginMs: this.opts.graceMarginMs, now: Date.now() };
    const first = await judgeClaim(reader, claim, opts);
    if (!first.release) return;
    const live = await this.api.getClaim(claim.metadata.name);
    if (!live) return;
    const verdict = reader === this.api && live.metadata.resourceVersion === claim.metadata.resourceVersion ? first : await judgeClaim(this.api, live, { ...opts, now: Date.now() });
    if (!verdict.release) return;
    if (await releaseJudgedClaim(this.api, live, verdict, this.log, this.metrics)) {
      this.claims.delete(live.metadata.name);
      this.enqueue(`pool:${live.spec.pool}`);
    }
  }

  /** Judges every claim on one consistent set of lists, then reconciles every pool. */
  async fullScan(): Promise<void> {
    const t0 = performance.now();
    const [claims, pods, sets, endpoints, pools] = await Promise.all([
      this.api.listAllClaims(), this.api.listAllPods(), this.api.listAllStatefulSets(), this.api.listAllEndpoints(), this.api.listPools(),
    ]);
    this.claims.clear();
    for (const c of claims) this.claims.set(c.metadata.name, c);
    this.synced = true;
    const key = (o: { metadata: { namespace?: string; name: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;
    const podMap = new Map(pods.map((p) => [key(p), p]));
    const stsMap = new Map(sets.map((s) => [key(s), s]));
    const epMap = new Map(endpoints.map((e) => [key(e), e]));
    const snapshot: Reader = {
      getPod: async (ns, name) => podMap.get(`${ns}/${name}`),
      getStatefulSet: async (ns, name) => stsMap.get(`${ns}/${name}`) as StatefulSetObject | undefined,
      getEndpoint: async (ns, name) => epMap.get(`${ns}/${name}`) as EndpointObject | undefined,
    };
    for (const c of claims) {
      await this.judgeAndRelease(c, snapshot).catch((err) => this.log.warn("reconcile failed", { claim: c.metadata.name, error: (err as Error).message }));
    }
    const counts = new Map<string, number>();
    for (const c of this.claims.values()) counts.set(c.spec.pool, (counts.get(c.spec.pool) ?? 0) + 1);
    for (const p of pools) {
      await reconcilePool(this.api, p.metadata.name, counts.get(p.metadata.name) ?? 0, this.log, this.metrics)
        .catch((err) => this.log.warn("pool reconcile failed", { pool: p.metadata.name, error: (err as Error).message }));
    }
    this.metrics.claims = this.claims.size;
    const seconds = (performance.now() - t0) / 1000;
    this.metrics.reconciled(seconds);
    this.log.info("full scan done", { claims: claims.length, released: claims.length - this.claims.size, seconds: seconds.toFixed(3) });
  }
}

function splitHostPort(listen: string): [string, number] {
  const i = listen.lastIndexOf(":");
  return [listen.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0", Number(listen.slice(i + 1))];
}

/** Builds a controller from options (kubeconfig file, or in-cluster configuration when none). */
export function createController(opts: ControllerOptions, log: Logger): Controller {
  return new Controller(createControllerClient(opts.kubeconfig, { requestTimeoutMs: 10_000 }), opts, log);
}
