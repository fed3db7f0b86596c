/**
 * `berth check --repair`: only what is provably safe, under the controller's
 * own rules (plugin/reconcile/), each write optimistic (resourceVersion, or a
 * create), one JSON log line and one Event per repair:
 * - a phantom binding is stripped from its endpoint;
 * - a drifting pool count is rewritten;
 * - an orphan claim the controller's judgement releases is released (not a
 *   half-finished ADD's: the controller times that on its own clock);
 * - a missing claim is created for the live pod that shows the address, when
 *   nobody holds it.
 * A duplicate is never touched (the finding names the pod to restart), nor
 * anything a live pod shows.
 */
import { claimFor, UNKNOWN_CONTAINER } from "../cluster/claims.ts";
import { claimDeadlineSeconds } from "../cluster/cluster-add.ts";
import { toPool } from "../cluster/pool-choice.ts";
import { incarnationUid } from "../cluster/statefulset.ts";
import { parseAddress } from "../ipam/ip.ts";
import { claimName } from "../kube/claim-name.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import { BERTH_API_VERSION, BERTH_GROUP, ENDPOINT_KIND, POOL_GROUP, POOL_KIND, POOL_VERSION } from "../kube/crd.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { KubeConflictError, KubeUnreachableError } from "../kube/kube-errors.ts";
import type { ReconcileCounters } from "../reconcile/counters.ts";
import { stripPhantom } from "../reconcile/endpoint-repair.ts";
import { judgeClaim } from "../reconcile/judge-claim.ts";
import { reconcilePool } from "../reconcile/pool-reconcile.ts";
import { claimEventTarget, releaseJudgedClaim } from "../reconcile/release-claim.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import { podFacts } from "./cluster-facts.ts";
import type { Problem } from "./problem.ts";

export interface RepairContext {
  api: ControllerApi;
  log: Logger;
  dryRun: boolean;
  addTimeoutMs: number;
  /** The pods ("namespace/name") the lists saw live and showing `address`: an orphan's address may be another pod's now. */
  showing: (address: string) => string[];
}

/** What the shared repairs count: nothing to count in a one-shot command. */
const quiet: ReconcileCounters = { released() {}, repaired() {}, pool() {}, forgetPool() {} };

/**
 * The shared repairs' own log, without their info lines: each repair logs
 * one line, "check repaired" (logRepair); their warnings still show.
 */
const warningsOnly = (log: Logger): Logger => ({ debug() {}, info() {}, warn: (m, f) => log.warn(m, f), error: (m, f) => log.error(m, f) });

/**
 * `p` with what --repair did about it (or, with --dry-run, would do). A
 * request the API server did not answer (reset, timed out) may still have
 * been carried out: that problem is reported not repaired, saying so, and the
 * other repairs go on. A re-run judges again from what is there, so it finds
 * such a write done (or the object changed since) and never repeats it
 * blindly: every write is conditional or a create.
 */
export async function repair(ctx: RepairContext, p: Problem): Promise<Problem> {
  const done = (repaired: boolean, what: string): Problem => ({ ...p, repair: what, repaired });
  try {
    return await repairOne(ctx, p, done);
  } catch (err) {
    if (!isKind(err, KubeUnreachableError)) throw err;
    return done(false, `not known whether repaired: ${(err as Error).message}; it may have been done: run berth check again`);
  }
}

async function repairOne(ctx: RepairContext, p: Problem, done: Done): Promise<Problem> {
  switch (p.kind) {
    case "phantom-binding":
      return repairPhantom(ctx, p, done);
    case "count-drift":
      return repairCounts(ctx, p, done);
    case "orphan-claim":
      return repairOrphan(ctx, p, done);
    case "missing-claim":
      return repairMissing(ctx, p, done);
    case "duplicate-address":
      return done(false, "never repaired: restart the pod the action names");
    default:
      return done(false, "not repaired: it needs what the action says");
  }
}

type Done = (repaired: boolean, what: string) => Problem;

function logRepair(ctx: RepairContext, p: Problem, what: string): void {
  ctx.log.info("check repaired", { kind: p.kind, address: p.address, pool: p.pool, pods: p.pods?.join(","), repair: what });
}

async function repairPhantom(ctx: RepairContext, p: Problem, done: Done): Promise<Problem> {
  const ep = p.objects?.find((o) => o.kind === "BerthEndpoint");
  if (!ep?.namespace || !p.address) return done(false, "not repaired: no endpoint named");
  const what = `strip ${p.address} from BerthEndpoint ${ep.namespace}/${ep.name}`;
  if (ctx.dryRun) return done(false, `would ${what}`);
  const stripped = await stripPhantom(ctx.api, { namespace: ep.namespace, name: ep.name, address: p.address }, warningsOnly(ctx.log), quiet);
  if (!stripped) return done(false, `not repaired: ${what} found it changed; run berth check again`);
  logRepair(ctx, p, what);
  await event(
    ctx,
    { kind: ENDPOINT_KIND, apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`, namespace: ep.namespace, name: ep.name },
    "PhantomStripped",
    `berth check --repair: ${what}`,
  );
  return done(true, `${what}: done`);
}

async function repairCounts(ctx: RepairContext, p: Problem, done: Done): Promise<Problem> {
  const pool = p.pool!;
  const claimed = (await ctx.api.listClaims(pool, true)).length;
  const what = `rewrite pool ${pool}'s counts from its claims (${claimed} claimed)`;
  if (ctx.dryRun) return done(false, `would ${what}`);
  await reconcilePool(ctx.api, pool, { claimed, mayRemoveFinalizer: false, finalizer: false }, warningsOnly(ctx.log), quiet);
  logRepair(ctx, p, what);
  await event(
    ctx,
    { kind: POOL_KIND, apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, namespace: "default", name: pool },
    "CountsRewritten",
    `berth check --repair: ${what}`,
  );
  return done(true, `${what}: done`);
}

async function repairOrphan(ctx: RepairContext, p: Problem, done: Done): Promise<Problem> {
  if (p.rule === "half-finished-add") return done(false, "left to the controller, which times an ADD's window on its own clock");
  const a = p.address ? parseAddress(p.address) : undefined;
  const claim = a ? await ctx.api.getClaim(claimName(a.family, a.value)) : undefined;
  if (!claim) return done(true, "released meanwhile");
  const verdict = await judgeClaim(ctx.api, claim, { addTimeoutMs: ctx.addTimeoutMs, graceMarginMs: 5000, now: ctx.api.serverNow() });
  if (!verdict.release) return done(false, `not repaired: judged again, it is held (${verdict.reason})`);
  const user = await liveUser(ctx, claim.spec.address, claim.spec.pool);
  if (user) return done(false, `not repaired: ${user} shows it (a live pod), so it is not free whoever its claim names; the action says what to do`);
  const what = `release ${claim.spec.address} (${verdict.reason})`;
  if (ctx.dryRun) return done(false, `would ${what}`);
  // The controller's own release: unchanged since judged (uid + resourceVersion), log line, Event.
  const released = await releaseJudgedClaim(ctx.api, claim, verdict, warningsOnly(ctx.log), quiet, "claim");
  if (!released) {
    // Gone (or another claim of that address now) is what was wanted, whoever deleted it: this run's own
    // request, its answer lost and the request sent again by the HTTP client (DELETE is idempotent; it is
    // conditional on this claim's UID), or a DEL. Its endpoint entry may be left: a phantom binding, which
    // the next run strips.
    const now = await ctx.api.getClaim(claim.metadata.name);
    if (now?.metadata.uid !== claim.metadata.uid)
      return done(true, `${what}: its claim is gone (released by a request whose answer was lost, or by someone else)`);
    return done(false, `not repaired: the claim changed meanwhile; run berth check again`);
  }
  logRepair(ctx, p, what);
  return done(true, `${what}: done`);
}

/** A live pod that shows `address` now (read again), or undefined. */
async function liveUser(ctx: RepairContext, address: string, poolName: string): Promise<string | undefined> {
  const refs = ctx.showing(address);
  if (!refs.length) return undefined;
  const poolObject = await ctx.api.getPool(poolName);
  const pools = poolObject ? [toPool(poolObject)] : [];
  for (const ref of refs) {
    const [ns, name] = ref.split("/");
    const pod = await ctx.api.getPod(ns, name);
    // Without its pool to judge by, a pod the lists saw showing the address still counts: never release on doubt.
    if (pod && (!pools.length || podFacts(pod, pools).shown.some((x) => x.address === address))) return ref;
  }
  return undefined;
}

async function repairMissing(ctx: RepairContext, p: Problem, done: Done): Promise<Problem> {
  const [ref] = p.pods ?? [];
  const a = p.address ? parseAddress(p.address) : undefined;
  if (!ref || !a || !p.pool) return done(false, "not repaired: no pod or pool named");
  const [ns, name] = ref.split("/");
  if (await ctx.api.getClaim(claimName(a.family, a.value))) return done(false, "not repaired: another pod holds its claim; the action says what to do");
  const pod = await ctx.api.getPod(ns, name);
  if (!pod?.metadata.uid || pod.metadata.deletionTimestamp) return done(false, "not repaired: the pod is gone or going");
  const poolObject = await ctx.api.getPool(p.pool);
  if (!poolObject) return done(false, `not repaired: pool ${p.pool} is gone`);
  // Where the pod shows it, read again: its interface (network-status), or the pod's own (status.podIPs: eth0).
  const shown = podFacts(pod, [toPool(poolObject)]).shown.find((x) => x.address === p.address);
  if (!shown) return done(false, "not repaired: the pod does not show it any more");
  const ifname = shown.where === "status.podIPs" ? "eth0" : shown.where;
  const what = `claim ${p.address} of pool ${p.pool} for ${ref} (${ifname})`;
  if (ctx.dryRun) return done(false, `would ${what}`);
  const holder = {
    namespace: ns,
    name,
    uid: incarnationUid(pod),
    containerId: UNKNOWN_CONTAINER,
    ifname,
    node: pod.spec?.nodeName ?? "",
    network: "",
    addDeadlineSeconds: claimDeadlineSeconds(30_000),
  };
  let created: ClaimObject;
  try {
    created = await ctx.api.createClaim(claimFor(a.family, p.address!, p.pool, holder));
  } catch (err) {
    if (isKind(err, KubeConflictError)) return done(false, "not repaired: someone claimed it meanwhile; run berth check again");
    throw err;
  }
  logRepair(ctx, p, what);
  await event(ctx, claimEventTarget(created), "AddressClaimed", `berth check --repair: ${what}, which it shows`);
  return done(true, `${what}: done`);
}

async function event(ctx: RepairContext, target: Parameters<ControllerApi["recordEvent"]>[0], reason: string, message: string): Promise<void> {
  await ctx.api.recordEvent(target, "Normal", reason, message).catch((err) => ctx.log.warn("event not recorded", { error: (err as Error).message }));
}
