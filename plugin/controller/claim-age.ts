/**
 * How old a claim is, by the API server's clock, and when its ADD may be
 * judged half-finished. Never from `spec.claimedAt`: that is the node's clock.
 */
import type { ClaimObject } from "../kube/kube-api.ts";

/**
 * The deadline assumed for a claim that records none (written by a berth 0.3
 * plugin): 600 s, the largest `timeoutSeconds` a 0.3 plugin accepts, plus a
 * margin for its last request.
 */
export const LEGACY_ADD_DEADLINE_SECONDS = 615;

/**
 * The claim's last write, by the server's clock (ms since the epoch): the
 * latest of `metadata.creationTimestamp` and `metadata.managedFields[].time`,
 * both set by the API server (a claim re-taken by a new sandbox is an
 * update, which moves its manager's time). Those times have whole seconds,
 * truncated, so one second is added: an age is never overstated. Undefined
 * when the object carries neither.
 */
export function lastWriteMs(claim: ClaimObject): number | undefined {
  let latest: number | undefined;
  for (const t of [claim.metadata.creationTimestamp, ...(claim.metadata.managedFields ?? []).map((f) => f.time)]) {
    const ms = t ? Date.parse(t) : NaN;
    if (Number.isFinite(ms) && (latest === undefined || ms > latest)) latest = ms;
  }
  return latest === undefined ? undefined : latest + 1000;
}

/** How long after its last write an unbound claim is left to its ADD: max(--add-timeout-seconds, the claim's recorded deadline). */
export function addWindowMs(claim: ClaimObject, addTimeoutMs: number): number {
  const recorded = claim.spec.addDeadlineSeconds;
  const deadline = typeof recorded === "number" && Number.isFinite(recorded) && recorded >= 0 ? recorded : LEGACY_ADD_DEADLINE_SECONDS;
  return Math.max(addTimeoutMs, deadline * 1000);
}

/** Server time (ms) after which the claim, if still unbound, is a half-finished ADD; undefined when its age is unknown. */
export function halfFinishedAt(claim: ClaimObject, addTimeoutMs: number): number | undefined {
  const written = lastWriteMs(claim);
  return written === undefined ? undefined : written + addWindowMs(claim, addTimeoutMs);
}
