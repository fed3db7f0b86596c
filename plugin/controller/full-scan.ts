/**
 * One full scan: every claim judged on one set of paged lists (and each
 * action confirmed live), every phantom binding confirmed and stripped, the
 * doubtful holds counted and reported, every pool reconciled. Stops
 * (NotLeaderError) as soon as this replica no longer leads in its term.
 */
import type { ControllerApi } from "../kube/controller-api.ts";
import type { ClaimObject, PodObject } from "../kube/kube-api.ts";
import { KubeRequestError } from "../kube/kube-errors.ts";
import { stripPhantom } from "../reconcile/endpoint-repair.ts";
import type { Reader, Verdict } from "../reconcile/judge-claim.ts";
import { claimEventTarget } from "../reconcile/release-claim.ts";
import { collectGarbage } from "../support/collect-garbage.ts";
import { isKind } from "../support/errors.ts";
import { faultValue } from "../support/faults.ts";
import type { Logger } from "../support/logger.ts";
import type { ClaimView } from "./claim-view.ts";
import type { HeldReport } from "./held-report.ts";
import { type LeaderElector, NotLeaderError } from "./leader.ts";
import type { Metrics } from "./metrics.ts";
import { IncompleteListError, takeSnapshot } from "./scan-snapshot.ts";

/** Claims judged between forced collections in a full scan. */
const JUDGED_PER_GC = 10_000;

/** What a full scan needs of the controller. */
export interface ScanHost {
  readonly api: ControllerApi;
  readonly writer: ControllerApi;
  readonly opts: { listPageSize?: number };
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly view: ClaimView;
  readonly held: HeldReport;
  readonly elector: LeaderElector;
  readonly isStopped: boolean;
  syncedTerm: number;
  everScanned: boolean;
  readonly synced: boolean;
  act(claim: ClaimObject, reader: Reader): Promise<Verdict | undefined>;
  reconcilePool(name: string): Promise<void>;
  sleep(ms: number): Promise<void>;
}

export async function fullScan(host: ScanHost, term: number): Promise<void> {
  const { api, log, metrics, view, elector } = host;
  const t0 = performance.now();
  // Claim events that arrive while the pages are read are replayed over them (claim-view.ts).
  view.startJournal();
  let journal = new Map<string, ClaimObject | null>();
  let snap: Awaited<ReturnType<typeof takeSnapshot>>;
  try {
    snap = await takeSnapshot(api, host.opts.listPageSize ?? 500, (name) => view.get(name));
  } finally {
    journal = view.endJournal();
  }
  log.debug("full scan: lists taken", { claims: snap.claims?.length, seconds: ((performance.now() - t0) / 1000).toFixed(3) });
  // The pages' garbage goes before the views are rebuilt on top of it.
  collectGarbage();
  for (const [kind, n] of snap.requests) metrics.listed(kind, n);
  for (const [kind, err] of snap.failed) {
    metrics.listed(kind, undefined);
    log.warn("full scan: list failed; what needs it waits for the next scan", { kind, error: err.message });
  }
  elector.check("full scan", term);
  const first = !host.everScanned;
  if (snap.claims) {
    view.replaceAll(snap.claims, journal);
    host.everScanned = true;
  }
  let released = 0;
  let undecided = 0;
  let judged = 0;
  host.held.begin();
  for (const c of snap.claims ?? []) {
    if (host.isStopped) return;
    elector.check("full scan", term);
    try {
      const verdict = await host.act(c, snap.reader);
      if (verdict?.release) released++;
      else if (verdict?.held && host.held.note(c.metadata.name, verdict.held)) await reportHeld(host, c);
    } catch (err) {
      if (isKind(err, NotLeaderError)) throw err;
      if (isKind(err, IncompleteListError)) undecided++;
      else log.warn("reconcile failed", { claim: c.metadata.name, error: (err as Error).message });
    }
    if (++judged === 1 && first) await pauseForTests(host);
    // Judging leaves garbage per claim (pod and endpoint views, promises): collected as it goes, so the
    // peak stays near the live data rather than the engine's next growth step (measured at 50,000 claims).
    if (judged % JUDGED_PER_GC === 0) collectGarbage();
  }
  const heldCounts = host.held.end();
  if (snap.claims && snap.failed.size === 0) metrics.held = heldCounts;
  let stripped = 0;
  for (const p of snap.phantoms) {
    elector.check("full scan", term);
    try {
      if (await stripPhantom(host.writer, p, log, metrics)) stripped++;
    } catch (err) {
      if (isKind(err, NotLeaderError)) throw err;
      log.warn("phantom binding not stripped; retried on the next scan", {
        pod: `${p.namespace}/${p.name}`,
        address: p.address,
        error: (err as Error).message,
      });
    }
  }
  log.debug("full scan: claims judged", { released, undecided, stripped, seconds: ((performance.now() - t0) / 1000).toFixed(3) });
  // Every claim was listed and judged in this term: the view is complete (finalizers may go, on a fresh read).
  if (snap.claims) host.syncedTerm = term;
  for (const p of snap.pools ?? []) {
    elector.check("full scan", term);
    const name = p.metadata.name;
    await host.reconcilePool(name).catch((err) => {
      if (isKind(err, NotLeaderError)) throw err;
      log.warn("pool reconcile failed", { pool: name, error: (err as Error).message });
    });
  }
  metrics.claims = view.size;
  const seconds = (performance.now() - t0) / 1000;
  metrics.reconciled(seconds);
  collectGarbage();
  const listRequests = [...snap.requests.values()].reduce((a, b) => a + b, 0);
  log.info("full scan done", {
    claims: snap.claims?.length ?? "unknown",
    released,
    undecided,
    stripped,
    held: heldCounts.size ? [...heldCounts].map(([k, n]) => `${k}=${n}`).join(",") : undefined,
    incomplete: snap.failed.size ? [...snap.failed.keys()].join(",") : undefined,
    listRequests,
    seconds: seconds.toFixed(3),
  });
}

/**
 * A claim held in doubt at two scans in a row: confirmed live, then one log
 * line and one Warning Event, on its pod, or on the claim itself when there
 * is no pod object (a static pod's mirror deleted) or its namespace refuses
 * new objects (being deleted).
 */
async function reportHeld(host: ScanHost, claim: ClaimObject): Promise<void> {
  const verdict = await host.act(claim, host.api);
  if (!verdict || verdict.release || !verdict.held) return;
  const { podNamespace: ns, podName: name, address, pool } = claim.spec;
  host.held.reportedNow(claim.metadata.name, verdict.held);
  host.log.warn("address held", { address, pool, pod: `${ns}/${name}`, held: verdict.held, reason: verdict.reason, claim: claim.metadata.name });
  const pod: PodObject | undefined = verdict.pod;
  const message = `berth holds ${address} (pool ${pool}) for pod ${ns}/${name}: ${verdict.reason}. See docs/safety.md for how to free it.`;
  const post = (target: Parameters<ControllerApi["recordEvent"]>[0]) => host.writer.recordEvent(target, "Warning", "AddressHeld", message);
  const onPod = pod && { kind: "Pod", apiVersion: "v1", namespace: ns, name, uid: pod.metadata.uid };
  try {
    await post(onPod ?? claimEventTarget(claim)).catch((err) => {
      if (!onPod || !isKind(err, KubeRequestError)) throw err;
      return post(claimEventTarget(claim)); // e.g. 403: the pod's namespace is being deleted
    });
  } catch (err) {
    if (isKind(err, NotLeaderError)) throw err;
    host.log.warn("event not recorded", { error: (err as Error).message });
  }
}

/** BERTH_FAULT=pause-scan=SECONDS: the first full scan stops that long after judging its first claim. */
async function pauseForTests(host: ScanHost): Promise<void> {
  const seconds = Number(faultValue("pause-scan"));
  if (!(seconds > 0)) return;
  host.log.warn("full scan paused (BERTH_FAULT=pause-scan)", { seconds });
  await host.sleep(seconds * 1000);
  host.log.warn("full scan resumes (BERTH_FAULT=pause-scan)", {});
}
