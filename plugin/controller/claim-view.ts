/**
 * The controller's view of every claim: kept from the watch and replaced by
 * each full scan, indexed by pod and counted per pool (so a pool's count
 * never needs a rescan), with the moment this replica first saw each claim.
 */
import type { ClaimObject } from "../kube/kube-api.ts";
import { withObservation } from "../reconcile/claim-age.ts";

const podKey = (ns: string | undefined, name: string) => `${ns}/${name}`;

export class ClaimView {
  /** Every claim as last seen (slim), by name. */
  private readonly claims = new Map<string, ClaimObject>();
  /** The claim names of each pod (namespace/name): one name, or a set when more. */
  private readonly byPod = new Map<string, string | Set<string>>();
  /** How many claims of the view name each pool. */
  private readonly poolClaims = new Map<string, number>();
  /**
   * When (this process's monotonic clock) each claim's current version was
   * first seen: its uid and generation, so a re-taken claim (an update,
   * generation 2 and up) counts as seen anew.
   */
  private readonly firstSeen = new Map<string, { version: string; at: number }>();
  /**
   * While a full scan lists, the claim events that arrive (name → the claim,
   * or null when deleted): replayed over the scan's snapshot, so a claim
   * created or deleted while the pages were read is not lost from the view.
   */
  private journal: Map<string, ClaimObject | null> | undefined;

  /** `now` is the API server's clock (ms since the epoch), read when a claim is judged. */
  constructor(private readonly serverNow: () => number) {}

  get size(): number {
    return this.claims.size;
  }

  get(name: string): ClaimObject | undefined {
    return this.claims.get(name);
  }

  has(name: string): boolean {
    return this.claims.has(name);
  }

  values(): IterableIterator<ClaimObject> {
    return this.claims.values();
  }

  claimedIn(pool: string): number {
    return this.poolClaims.get(pool) ?? 0;
  }

  /**
   * The claims a work-queue key names (controller.ts enqueues them): `claim:NAME`, `pod:NS/NAME`,
   * `sts:NS/SET`, `ipamclaim:UID`, `ipamref:NS/IPAMCLAIM` (pods that name it), `node:NAME` (static pods).
   */
  claimsOfKey(kind: string, id: string): ClaimObject[] {
    const all = () => [...this.claims.values()];
    switch (kind) {
      case "claim":
        return this.claims.has(id) ? [this.claims.get(id)!] : [];
      case "pod":
        return this.claimsOfPod(id.slice(0, id.indexOf("/")), id.slice(id.indexOf("/") + 1));
      case "sts":
        return all().filter((c) => c.spec.statefulSet && `${c.spec.podNamespace}/${c.spec.statefulSet}` === id);
      case "ipamclaim":
        return all().filter((c) => c.spec.ipamClaim?.uid === id);
      case "ipamref":
        return all().filter((c) => c.spec.ipamClaim && `${c.spec.podNamespace}/${c.spec.ipamClaim.name}` === id);
      case "node":
        return all().filter((c) => c.spec.staticPod && c.spec.node === id);
      default:
        return [];
    }
  }

  claimsOfPod(ns: string, name: string): ClaimObject[] {
    const names = this.byPod.get(podKey(ns, name));
    const list = names === undefined ? [] : typeof names === "string" ? [names] : [...names];
    return list.map((n) => this.claims.get(n)).filter((c): c is ClaimObject => !!c);
  }

  /**
   * `claim` as the judgement must see it: written no earlier than when this
   * replica first saw its current version. Ages so measured run on this
   * process's own clock from a moment after the claim's real creation, so
   * neither a node's clock nor an API server whose clock differs from the one
   * answering now (several behind a load balancer) can make a claim look
   * older than it is (claim-age.ts).
   */
  observe(claim: ClaimObject): ClaimObject {
    const { name, uid, generation = 1 } = claim.metadata;
    const version = `${uid}/${generation}`;
    let seen = this.firstSeen.get(name);
    if (!seen || seen.version !== version) {
      seen = { version, at: performance.now() };
      this.firstSeen.set(name, seen);
    }
    return withObservation(claim, this.serverNow() - (performance.now() - seen.at));
  }

  /** Adds or replaces a claim from the watch (recorded in the journal while a scan lists). */
  put(claim: ClaimObject): void {
    this.journal?.set(claim.metadata.name, claim);
    this.remember(claim);
  }

  /** Drops a claim (deleted, or released by this controller). */
  delete(name: string): void {
    this.journal?.set(name, null);
    this.forget(name);
  }

  /** Starts recording watch events for `replaceAll`. */
  startJournal(): void {
    this.journal = new Map();
  }

  /** Stops recording; returns what was recorded. */
  endJournal(): Map<string, ClaimObject | null> {
    const j = this.journal ?? new Map();
    this.journal = undefined;
    return j;
  }

  /** Replaces the view with a full list, then applies the events seen while it was listed unless the list holds a newer version. */
  replaceAll(listed: ClaimObject[], journal: Map<string, ClaimObject | null>): void {
    this.claims.clear();
    this.byPod.clear();
    this.poolClaims.clear();
    const names = new Set(listed.map((c) => c.metadata.name));
    for (const name of this.firstSeen.keys()) if (!names.has(name) && !journal.get(name)) this.firstSeen.delete(name);
    for (const c of listed) this.remember(c);
    for (const [name, claim] of journal) {
      const have = this.claims.get(name);
      if (claim === null) this.forget(name);
      else if (!have || have.metadata.uid !== claim.metadata.uid || !newerOrSame(have, claim)) this.remember(claim);
    }
  }

  private remember(claim: ClaimObject): void {
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

  private forget(name: string): void {
    this.firstSeen.delete(name);
    const old = this.claims.get(name);
    if (!old) return;
    this.claims.delete(name);
    this.unindex(old);
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
}

/** Whether `a` is the same version of the object as `b`, or a later one (resourceVersions of one object, compared as etcd revisions). */
function newerOrSame(a: ClaimObject, b: ClaimObject): boolean {
  const [x, y] = [Number(a.metadata.resourceVersion), Number(b.metadata.resourceVersion)];
  return Number.isFinite(x) && Number.isFinite(y) ? x >= y : a.metadata.resourceVersion === b.metadata.resourceVersion;
}
