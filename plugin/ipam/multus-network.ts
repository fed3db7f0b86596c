/**
 * Which NetworkAttachmentDefinition an ADD serves, read from the pod's Multus
 * annotations the way Multus reads them, so that a pool's `multusName` is
 * judged on the NAD's namespace and name, never on the network `name` in the
 * configuration (which the NAD's author writes, whatever they choose).
 *
 * Multus (k8snetworkplumbingwg/multus-cni, pkg/k8sclient/k8sclient.go):
 * - `k8s.v1.cni.cncf.io/networks` lists a pod's extra networks, as text
 *   (`name`, `ns/name`, `name@iface`, `ns/name@iface`, comma-separated) or as
 *   JSON (`[{"name", "namespace", "interface"}]`); an entry without a
 *   namespace is in the pod's namespace (parsePodNetworkAnnotation, called
 *   with `pod.ObjectMeta.Namespace`). An entry without an interface gets
 *   `net<N>` from its position among every delegate, the cluster's default
 *   networks included, which berth cannot see: position decides nothing here.
 * - `v1.multus-cni.io/default-network` replaces the cluster default network:
 *   exactly one entry in the same forms; without a namespace it is in Multus'
 *   `multusNamespace` (`kube-system` unless Multus is configured otherwise);
 *   without an interface it gets the interface the runtime asked for (eth0).
 *
 * Pure: the caller hands in the annotations and the ADD's interface and
 * network name.
 */

/** Multus' annotation naming a pod's extra networks. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
/** Multus' annotation replacing the pod's cluster default network. */
export const DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network";
/**
 * Where a NAD named without a namespace lives when it is the default network
 * (Multus' default `multusNamespace`), and where a pool's `multusName` entry
 * without a namespace points (Spiderpool's own namespace, kube-system in its
 * documented install; berth's ServiceAccount's too). Only cluster
 * administrators write NADs there.
 */
export const SYSTEM_NAMESPACE = "kube-system";

/** One entry of a Multus annotation: which NAD, and the interface it asks for, if any. */
export interface NetworkEntry {
  namespace: string;
  name: string;
  interface?: string;
  /** The IPAMClaim the element names (`ipam-claim-reference`, JSON form only). */
  ipamClaimReference?: string;
  /** The annotation it came from. */
  annotation: string;
}

/** The NAD an ADD serves (`namespace/name`), or why that cannot be told. */
export type Resolved = { nad: string; entry: NetworkEntry; why?: undefined } | { why: string; nad?: undefined };

// DNS-1123 label, as Multus checks the text form's namespace and name.
const LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IFNAMSIZ = 16;

/**
 * The entries of one annotation value, in Multus' forms; `defaultNamespace`
 * for entries that name none. Throws an Error saying what is wrong (Multus
 * would refuse the pod).
 */
export function parseNetworkAnnotation(value: string, defaultNamespace: string, annotation: string): NetworkEntry[] {
  const raw = /[[{"]/.test(value) ? fromJson(value) : fromText(value);
  return raw.map((e) => ({ ...e, namespace: e.namespace || defaultNamespace, annotation }));
}

type RawEntry = { namespace: string; name: string; interface?: string; ipamClaimReference?: string };

function fromText(value: string): RawEntry[] {
  return value.split(",").map((item) => {
    const entry = item.trim();
    const slash = entry.split("/");
    if (slash.length > 2) throw new Error(`entry ${JSON.stringify(entry)} has more than one "/"`);
    const namespace = slash.length === 2 ? slash[0].trim() : "";
    const at = slash[slash.length - 1].split("@");
    if (at.length > 2) throw new Error(`entry ${JSON.stringify(entry)} has more than one "@"`);
    const name = at[0].trim();
    const iface = at.length === 2 ? at[1].trim() : "";
    for (const part of [namespace, name]) {
      if (part && !LABEL_RE.test(part)) throw new Error(`entry ${JSON.stringify(entry)}: ${JSON.stringify(part)} is not a DNS-1123 label`);
    }
    if (!name) throw new Error(`entry ${JSON.stringify(entry)} names no network`);
    if (iface && (iface.length >= IFNAMSIZ || /[\s/]/.test(iface))) throw new Error(`entry ${JSON.stringify(entry)}: invalid interface name`);
    return { namespace, name, ...(iface ? { interface: iface } : {}) };
  });
}

/**
 * Go's encoding/json matches object keys to fields without regard to case
 * (and folds ſ to s, K to k): `"Namespace"` sets the namespace for Multus.
 * Read the same way, or a key spelt differently would mean one NAD to Multus
 * and another to berth. Two keys for one field: refused, since which wins
 * would depend on their order, which JSON.parse does not keep for repeats.
 */
const FIELDS = ["name", "namespace", "interface", "interfacerequest", "ipam-claim-reference"] as const;
type Field = (typeof FIELDS)[number];
const fold = (key: string) => key.toLowerCase().replace(/ſ/g, "s");

function fromJson(value: string): RawEntry[] {
  let list: unknown;
  try {
    list = JSON.parse(value);
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(list)) throw new Error("JSON form must be a list of {name, namespace, interface}");
  return list.map((item, i) => {
    if (typeof item !== "object" || item === null || Array.isArray(item)) throw new Error(`entry ${i} is not an object`);
    const got: Partial<Record<Field, string>> = {};
    for (const [key, v] of Object.entries(item)) {
      const field = FIELDS.find((f) => f === fold(key));
      if (!field) continue;
      if (field in got) throw new Error(`entry ${i} gives ${field} twice (keys differing in case)`);
      if (v !== null && typeof v !== "string") throw new Error(`entry ${i}: ${key} is not a string`);
      got[field] = v ?? "";
    }
    if (!got.name) throw new Error(`entry ${i} names no network`);
    // Multus reads the pre-3.2 "interfaceRequest" when "interface" is empty.
    const iface = got.interface || got.interfacerequest || "";
    const ref = got["ipam-claim-reference"];
    return { namespace: got.namespace ?? "", name: got.name, ...(iface ? { interface: iface } : {}), ...(ref ? { ipamClaimReference: ref } : {}) };
  });
}

/** What the ADD knows: the pod's annotations and namespace, CNI_IFNAME and the configuration's network name. */
export interface AddIdentity {
  annotations: Record<string, string>;
  podNamespace: string;
  ifname: string;
  network: string;
}

/** The names Multus gives extra networks that ask for no interface (getIfname: `net<index>`). */
const AUTO_IFNAME = /^net\d+$/;

const show = (e: NetworkEntry) => `${e.namespace}/${e.name}${e.interface ? `@${e.interface}` : ""}`;

/**
 * The NAD this ADD serves:
 * 1. the one entry (of either annotation) whose explicit interface is CNI_IFNAME;
 * 2. else, among the entries without an interface that can have this one
 *    (an extra network's when CNI_IFNAME is `net<N>`, Multus' name for them;
 *    the default network's otherwise), the one whose NAD name is the
 *    network's name, provided none of the others lives in another namespace:
 *    such an entry could be the one this ADD serves, its configuration naming
 *    its network the same (a NAD's author chooses that name), and a
 *    namespace is where NAD authorship ends.
 * Anything else is ambiguous, and the reason says what would settle it.
 */
export function resolveNetwork(id: AddIdentity): Resolved {
  const entries: NetworkEntry[] = [];
  const sources = [
    { key: NETWORKS_ANNOTATION, ns: id.podNamespace },
    { key: DEFAULT_NETWORK_ANNOTATION, ns: SYSTEM_NAMESPACE },
  ];
  for (const { key, ns } of sources) {
    const value = id.annotations[key];
    if (value === undefined || (key === NETWORKS_ANNOTATION && value === "")) continue;
    try {
      const parsed = parseNetworkAnnotation(value, ns, key);
      if (key === DEFAULT_NETWORK_ANNOTATION && parsed.length !== 1) throw new Error(`names ${parsed.length} networks, Multus takes exactly one`);
      entries.push(...parsed);
    } catch (err) {
      return { why: `the pod's annotation ${key} cannot be read (${(err as Error).message})` };
    }
  }
  if (entries.length === 0) {
    return { why: `the pod has no ${NETWORKS_ANNOTATION} or ${DEFAULT_NETWORK_ANNOTATION} annotation naming the NetworkAttachmentDefinition` };
  }
  const list = entries.map(show).join(", ");
  const explicit = entries.filter((e) => e.interface === id.ifname);
  if (explicit.length === 1) return { nad: `${explicit[0].namespace}/${explicit[0].name}`, entry: explicit[0] };
  if (explicit.length > 1) return { why: `entries ${explicit.map(show).join(" and ")} both ask for interface ${id.ifname}` };
  // Multus names an extra network without an interface net<N>, and gives the default network the
  // runtime's interface (eth0): which kind of entry this ADD can be follows from CNI_IFNAME.
  const extra = AUTO_IFNAME.test(id.ifname);
  const open = entries.filter((e) => !e.interface && (e.annotation === NETWORKS_ANNOTATION) === extra);
  const named = open.filter((e) => e.name === id.network);
  if (named.length === 0) {
    return { why: `no entry of the pod's networks (${list}) asks for interface ${id.ifname} or names a NAD ${id.network} without an interface` };
  }
  if (named.length > 1) {
    return { why: `entries ${named.map(show).join(" and ")} both name NAD ${id.network} and neither asks for interface ${id.ifname}` };
  }
  const one = named[0];
  const rivals = open.filter((e) => e !== one && e.namespace !== one.namespace);
  if (rivals.length) {
    return {
      why: `entry ${show(one)} names NAD ${id.network}, but ${rivals.map(show).join(", ")} (another namespace, no interface) could be the one this ADD serves; give the entries their interfaces (ns/name@iface)`,
    };
  }
  return { nad: `${one.namespace}/${one.name}`, entry: one };
}

/**
 * The IPAMClaim (multi-network spec v1.3) the element of this ADD names, or
 * undefined. Multus does not pass the field on to its delegates, so it is
 * read here from the pod: only in `k8s.v1.cni.cncf.io/networks`, only from
 * the element whose explicit `interface` is CNI_IFNAME. An element that
 * names one without an interface is refused (Error): which ADD it belongs to
 * follows from Multus' numbering, which counts default networks berth cannot
 * see, and an address handed to the wrong interface would outlive the pod.
 */
export function ipamClaimReference(annotations: Record<string, string>, podNamespace: string, ifname: string): string | undefined {
  const value = annotations[NETWORKS_ANNOTATION];
  if (!value || !/[[{"]/.test(value)) return undefined; // the text form cannot carry one
  let entries: NetworkEntry[];
  try {
    entries = parseNetworkAnnotation(value, podNamespace, NETWORKS_ANNOTATION);
  } catch (err) {
    throw new Error(`the pod's annotation ${NETWORKS_ANNOTATION} cannot be read (${(err as Error).message})`);
  }
  const loose = entries.find((e) => e.ipamClaimReference && !e.interface);
  if (loose) {
    throw new Error(
      `the pod's ${NETWORKS_ANNOTATION} element ${show(loose)} names ipam-claim-reference ${JSON.stringify(loose.ipamClaimReference)} without an "interface": give the element its interface`,
    );
  }
  return entries.find((e) => e.interface === ifname && e.ipamClaimReference)?.ipamClaimReference;
}

/**
 * Whether any element of the pod's networks names the IPAMClaim `name` (its
 * pod's namespace is the IPAMClaim's). An annotation that cannot be read, yet
 * mentions the name, counts as naming it: a doubt holds the address.
 */
export function namesIpamClaim(annotations: Record<string, string> | undefined, podNamespace: string, name: string): boolean {
  const value = annotations?.[NETWORKS_ANNOTATION];
  if (!value || !/[[{"]/.test(value)) return false;
  try {
    return parseNetworkAnnotation(value, podNamespace, NETWORKS_ANNOTATION).some((e) => e.ipamClaimReference === name);
  } catch {
    return value.includes(name);
  }
}

/** The IPAMClaims the pod's networks name (none when the annotation cannot be read). */
export function ipamClaimNames(annotations: Record<string, string> | undefined, podNamespace: string): string[] {
  const value = annotations?.[NETWORKS_ANNOTATION];
  if (!value || !/[[{"]/.test(value)) return [];
  try {
    return parseNetworkAnnotation(value, podNamespace, NETWORKS_ANNOTATION).flatMap((e) => (e.ipamClaimReference ? [e.ipamClaimReference] : []));
  } catch {
    return [];
  }
}

/** A pool's multusName entry as `namespace/name`: without a namespace it is kube-system's (Spiderpool's reading). */
export function qualifiedMultusName(entry: string): string {
  return entry.includes("/") ? entry : `${SYSTEM_NAMESPACE}/${entry}`;
}
