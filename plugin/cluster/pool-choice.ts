/**
 * Which SpiderIPPools may serve one interface of a pod, per family, in
 * Spiderpool's order of precedence, filtered by each pool's restrictions.
 */
import type { Family } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import { matchesSelector } from "../ipam/label-selector.ts";
import { qualifiedMultusName, type Resolved, resolveNetwork } from "../ipam/multus-network.ts";
import { type FamilyPools, FieldError, type Pool, parsePool } from "../ipam/pool.ts";
import type { KubeApi, NamedObject, PodObject, PoolObject } from "../kube/kube-api.ts";
import { isKind } from "../support/errors.ts";

export const ANNOTATION_IPPOOLS = "ipam.spidernet.io/ippools";
export const ANNOTATION_IPPOOL = "ipam.spidernet.io/ippool";
export const NS_DEFAULT_IPV4 = "ipam.spidernet.io/default-ipv4-ippool";
export const NS_DEFAULT_IPV6 = "ipam.spidernet.io/default-ipv6-ippool";

export interface ChoiceContext {
  api: KubeApi;
  pod: PodObject;
  ifname: string;
  /** The configuration's network name (the NAD author's choice; matched against the pod's Multus annotations). */
  network: string;
  nodeName: string;
  configDefaults: Record<Family, string[]>;
  /** Fetched at most once, and only when a pool or the defaults need them. */
  namespace: () => Promise<NamedObject | undefined>;
  node: () => Promise<NamedObject | undefined>;
}

/** Pool names per family and where they came from. */
interface Named {
  source: string;
  names: Record<Family, string[]>;
}

/** Returns the candidate pools per requested family, or throws IpamError. */
export async function choosePools(ctx: ChoiceContext): Promise<{ source: string; families: FamilyPools[] }> {
  const named = (await namedPools(ctx)) ?? undefined;
  let objects: Record<Family, { name: string; obj?: PoolObject }[]>;
  let source: string;
  if (named) {
    source = named.source;
    const unique = [...new Set([...named.names[4], ...named.names[6]])];
    const fetched = new Map(await Promise.all(unique.map(async (n) => [n, await ctx.api.getPool(n)] as const)));
    const missing = unique.filter((n) => !fetched.get(n));
    if (missing.length) {
      throw new IpamError("not-found", `SpiderIPPool ${missing.join(", ")} named by ${source} not found on API server ${ctx.api.server}`);
    }
    objects = { 4: named.names[4].map((n) => ({ name: n, obj: fetched.get(n) })), 6: named.names[6].map((n) => ({ name: n, obj: fetched.get(n) })) };
  } else {
    source = "pools with spec.default: true";
    const all = (await ctx.api.listPools()).filter((p) => p.spec?.default === true).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const byFamily = (f: Family) => all.filter((p) => familyOf(p) === f).map((p) => ({ name: p.metadata.name, obj: p }));
    objects = { 4: byFamily(4), 6: byFamily(6) };
  }

  const families: FamilyPools[] = [];
  for (const family of [4, 6] as const) {
    const entries = objects[family];
    if (entries.length === 0) continue;
    const pools: Pool[] = [];
    const refusals: string[] = [];
    for (const { name, obj } of entries) {
      const pool = toPool(obj!);
      const why = pool.family !== family ? `is IPv${pool.family}` : await refusal(ctx, pool);
      if (why) refusals.push(`${name} ${why}`);
      else pools.push(pool);
    }
    if (pools.length === 0) {
      throw new IpamError("no-pool", `no IPv${family} pool can serve pod ${podName(ctx.pod)} interface ${ctx.ifname} (from ${source}): ${refusals.join("; ")}`);
    }
    families.push({ family, pools });
  }
  if (families.length === 0) {
    throw new IpamError("no-pool", `no pool for pod ${podName(ctx.pod)} interface ${ctx.ifname}: ${source} name none`);
  }
  return { source, families };
}

/** A SpiderIPPool object as a validated Pool (IpamError "bad-pool" if its spec is invalid). */
export function toPool(obj: PoolObject): Pool {
  try {
    const pool = parsePool(`spiderippool ${obj.metadata.name} spec`, { name: obj.metadata.name, ...stripNulls(obj.spec) }, true);
    if (obj.metadata.deletionTimestamp) pool.deleting = true;
    return pool;
  } catch (err) {
    if (isKind(err, FieldError)) throw new IpamError("bad-pool", err.message, "", { cause: err });
    throw err;
  }
}

function stripNulls(spec: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== null && v !== undefined));
}

function familyOf(p: PoolObject): Family | undefined {
  if (p.spec.ipVersion === 4 || p.spec.ipVersion === 6) return p.spec.ipVersion;
  return p.spec.subnet?.includes(":") ? 6 : p.spec.subnet ? 4 : undefined;
}

/** Why the pool may not serve this pod here, or undefined when it may. */
async function refusal(ctx: ChoiceContext, pool: Pool): Promise<string | undefined> {
  if (pool.disable) return "is disabled";
  const a = pool.affinity ?? {};
  if (a.nodeName) {
    if (!a.nodeName.includes(ctx.nodeName)) return `is for nodes ${a.nodeName.join(", ")}, not ${ctx.nodeName}`;
  } else if (a.nodeAffinity) {
    // Judged on the node's real labels only: treating a node that cannot be read as unlabelled would
    // silently skip the pool (and could move a bound member to another one).
    const node = await ctx.node();
    if (!node)
      throw new IpamError("not-found", `node ${ctx.nodeName} not found on the API server: pool ${pool.name} has a nodeAffinity, which needs the node's labels`);
    if (!matchesSelector(a.nodeAffinity, node.metadata.labels)) return `nodeAffinity does not match node ${ctx.nodeName}`;
  }
  const ns = ctx.pod.metadata.namespace ?? "";
  if (a.namespaceName) {
    if (!a.namespaceName.includes(ns)) return `is for namespaces ${a.namespaceName.join(", ")}, not ${ns}`;
  } else if (a.namespaceAffinity && !matchesSelector(a.namespaceAffinity, (await ctx.namespace())?.metadata.labels)) {
    return `namespaceAffinity does not match namespace ${ns}`;
  }
  if (a.podAffinity && !matchesSelector(a.podAffinity, ctx.pod.metadata.labels)) return "podAffinity does not match the pod's labels";
  if (a.multusName) {
    // Judged on the NAD the pod's annotations say this ADD serves, never on the network name alone:
    // any namespace's users may give their own NAD's network that name.
    const served = servedNad(ctx);
    const wanted = a.multusName.map(qualifiedMultusName);
    if (served.why !== undefined)
      return `is for networks ${wanted.join(", ")}, and which NetworkAttachmentDefinition this ADD serves is unclear: ${served.why}`;
    if (!wanted.includes(served.nad)) {
      return `is for networks ${wanted.join(", ")}, not ${served.nad} (the NetworkAttachmentDefinition this ADD serves, from the pod's ${served.entry.annotation} annotation)`;
    }
  }
  return undefined;
}

/** Which NAD this ADD serves, from the pod's Multus annotations (multus-network.ts). */
function servedNad(ctx: ChoiceContext): Resolved {
  return resolveNetwork({
    annotations: ctx.pod.metadata.annotations ?? {},
    podNamespace: ctx.pod.metadata.namespace ?? "",
    ifname: ctx.ifname,
    network: ctx.network,
  });
}

/** Pool names from annotations or configuration, highest precedence first; undefined means "the default pools". */
async function namedPools(ctx: ChoiceContext): Promise<Named | undefined> {
  const ann = ctx.pod.metadata.annotations ?? {};
  const pod = podName(ctx.pod);
  if (ann[ANNOTATION_IPPOOLS] !== undefined) {
    const list = parseAnnotation(ann[ANNOTATION_IPPOOLS], `annotation ${ANNOTATION_IPPOOLS} of pod ${pod}`);
    if (!Array.isArray(list)) throw badAnnotation(ANNOTATION_IPPOOLS, pod, "must be a list of {interface, ipv4, ipv6}");
    const entry = list.find((e) => (e as { interface?: unknown })?.interface === ctx.ifname);
    if (entry) return { source: `annotation ${ANNOTATION_IPPOOLS} of pod ${pod}`, names: familyNames(entry, ANNOTATION_IPPOOLS, pod) };
  }
  if (ann[ANNOTATION_IPPOOL] !== undefined) {
    const entry = parseAnnotation(ann[ANNOTATION_IPPOOL], `annotation ${ANNOTATION_IPPOOL} of pod ${pod}`);
    if (typeof entry !== "object" || entry === null || Array.isArray(entry))
      throw badAnnotation(ANNOTATION_IPPOOL, pod, 'must be an object {"ipv4": [...], "ipv6": [...]}');
    const iface = (entry as { interface?: unknown }).interface;
    if (iface === undefined || iface === ctx.ifname)
      return { source: `annotation ${ANNOTATION_IPPOOL} of pod ${pod}`, names: familyNames(entry, ANNOTATION_IPPOOL, pod) };
  }
  const nsObj = await ctx.namespace();
  const nsAnn = nsObj?.metadata.annotations ?? {};
  if (nsAnn[NS_DEFAULT_IPV4] !== undefined || nsAnn[NS_DEFAULT_IPV6] !== undefined) {
    const where = `namespace ${ctx.pod.metadata.namespace}`;
    const names = {
      4:
        nsAnn[NS_DEFAULT_IPV4] === undefined
          ? []
          : nameList(parseAnnotation(nsAnn[NS_DEFAULT_IPV4], `annotation ${NS_DEFAULT_IPV4} of ${where}`), NS_DEFAULT_IPV4, where),
      6:
        nsAnn[NS_DEFAULT_IPV6] === undefined
          ? []
          : nameList(parseAnnotation(nsAnn[NS_DEFAULT_IPV6], `annotation ${NS_DEFAULT_IPV6} of ${where}`), NS_DEFAULT_IPV6, where),
    };
    if (names[4].length || names[6].length) return { source: `annotations of ${where}`, names };
  }
  if (ctx.configDefaults[4].length || ctx.configDefaults[6].length) {
    return { source: "ipam.default_ipv4_ippool / default_ipv6_ippool", names: { 4: ctx.configDefaults[4], 6: ctx.configDefaults[6] } };
  }
  return undefined;
}

function parseAnnotation(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new IpamError("bad-annotation", `${where} is not valid JSON: ${(err as Error).message}`, `value: ${text}`, { cause: err });
  }
}

function badAnnotation(key: string, owner: string, reason: string): IpamError {
  return new IpamError("bad-annotation", `annotation ${key} of ${owner} ${reason}`);
}

function familyNames(entry: unknown, key: string, owner: string): Record<Family, string[]> {
  const e = entry as { ipv4?: unknown; ipv6?: unknown };
  return { 4: e.ipv4 === undefined ? [] : nameList(e.ipv4, key, owner), 6: e.ipv6 === undefined ? [] : nameList(e.ipv6, key, owner) };
}

function nameList(value: unknown, key: string, owner: string): string[] {
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v === "")) {
    throw badAnnotation(key, owner, `names pools as ${JSON.stringify(value)}, expected a list of pool names`);
  }
  return value as string[];
}

function podName(pod: PodObject): string {
  return `${pod.metadata.namespace}/${pod.metadata.name}`;
}
