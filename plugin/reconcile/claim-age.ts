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
 * both set by the API server. Those times have whole seconds, truncated, so
 * one second is added: an age is never overstated. Undefined when the
 * object carries neither.
 *
 * A claim never changed since its creation (`metadata.generation` 1) was
 * last written at its creation, exactly. A claim re-taken by a new sandbox
 * (an update, generation 2 and up) may have been written later than any of
 * those times: a manager's time moves only when it takes fields it did not
 * own (Kubernetes 1.20), and the plugin updates its own fields. The
 * controller adds, in its own copies, the time it first saw that generation
 * (`withObservation`): later than the write, so never an overstated age.
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

/** The managedFields entry the controller adds to its own copies of a claim (never sent to the server). */
export const OBSERVED_MANAGER = "berth-controller/observed";

/** A copy of `claim` whose last write is at least `atMs` (server time the controller first saw this generation). */
export function withObservation(claim: ClaimObject, atMs: number): ClaimObject {
  const fields = (claim.metadata.managedFields ?? []).filter((f) => f.manager !== OBSERVED_MANAGER);
  return { ...claim, metadata: { ...claim.metadata, managedFields: [...fields, { manager: OBSERVED_MANAGER, time: new Date(atMs).toISOString() }] } };
}
