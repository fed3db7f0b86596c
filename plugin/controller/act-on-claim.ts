/** One claim judged and acted on: released, its endpoint entry written back, or left. */
import type { ControllerApi } from "../kube/controller-api.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { rebuildEntry } from "../reconcile/endpoint-repair.ts";
import { type JudgeOptions, judgeClaim, type Reader, type Verdict } from "../reconcile/judge-claim.ts";
import { releaseJudgedClaim } from "../reconcile/release-claim.ts";
import type { Logger } from "../support/logger.ts";
import type { ClaimView } from "./claim-view.ts";
import type { Metrics } from "./metrics.ts";

/** What acting needs of the controller. */
export interface ActHost {
  readonly api: ControllerApi;
  /** Writes, each checked for leadership right before it is sent. */
  readonly writer: ControllerApi;
  readonly view: ClaimView;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly opts: Omit<JudgeOptions, "now">;
  /** A pool whose claims changed: its status is due. */
  schedulePool(pool: string): void;
}

/**
 * Judges the claim on `reader` and acts: a release, or an endpoint entry
 * written back, is confirmed on a live re-read first and made only if the
 * claim is unchanged since. Returns the verdict acted on (the first one, when
 * nothing was to be done).
 */
export async function actOnClaim(host: ActHost, claim: ClaimObject, reader: Reader): Promise<Verdict | undefined> {
  const { api, view } = host;
  const opts = { addTimeoutMs: host.opts.addTimeoutMs, graceMarginMs: host.opts.graceMarginMs, now: api.serverNow() };
  const first = await judgeClaim(reader, view.observe(claim), opts);
  if (!first.release && !first.rebuild) return first;
  const live = await api.getClaim(claim.metadata.name);
  if (!live) return undefined;
  const verdict =
    reader === api && live.metadata.resourceVersion === claim.metadata.resourceVersion
      ? first
      : await judgeClaim(api, view.observe(live), { ...opts, now: api.serverNow() });
  if (verdict.release) {
    if (await releaseJudgedClaim(host.writer, live, verdict, host.log, host.metrics)) {
      view.delete(live.metadata.name);
      host.schedulePool(live.spec.pool);
    }
  } else if (verdict.rebuild) {
    const { podNamespace: ns, podName: name, interface: ifname, ipVersion } = live.spec;
    const rivals = view.claimsOfPod(ns, name).filter((c) => c.spec.interface === ifname && c.spec.ipVersion === ipVersion);
    await rebuildEntry(host.writer, live, host.log, host.metrics, rivals);
  }
  return verdict;
}
