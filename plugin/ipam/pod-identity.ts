/** Who the pod is, from CNI_ARGS, and whether local mode treats it as a StatefulSet member. */

export interface PodIdentity {
  namespace: string;
  name: string;
  uid?: string;
}

/** The pod named by K8S_POD_NAMESPACE / K8S_POD_NAME, or undefined when the runtime sent none. */
export function podIdentity(args: Map<string, string>): PodIdentity | undefined {
  const namespace = args.get("K8S_POD_NAMESPACE");
  const name = args.get("K8S_POD_NAME");
  if (!namespace || !name) return undefined;
  const id: PodIdentity = { namespace, name };
  const uid = args.get("K8S_POD_UID");
  if (uid) id.uid = uid;
  return id;
}

// The alphabet Kubernetes uses for generated name suffixes (no vowels, no 0/1/3).
const GENERATED = "[bcdfghjklmnpqrstvwxz2456789]";
// A StatefulSet ordinal as the controller writes it: decimal, no leading zero.
const ORDINAL = "0|[1-9][0-9]*";
const ORDINAL_RE = new RegExp(`^(.+)-(${ORDINAL})$`);
const ORDINAL_ONLY_RE = new RegExp(`^(${ORDINAL})$`);
const GENERATED_SUFFIX_RE = new RegExp(`^${GENERATED}{5}$`);

/**
 * Local mode has no API server, so it infers StatefulSet membership from the
 * name: `<set>-<ordinal>`. A five-character all-digit suffix drawn from the
 * generator's alphabet (e.g. a Deployment pod "web-7d9f5c-24567") is taken to
 * be generated, not an ordinal: StatefulSets that large are rarer than such
 * names. Cluster mode reads the owner reference instead and never guesses.
 */
export function looksLikeStatefulSetPod(name: string): boolean {
  const m = ORDINAL_RE.exec(name);
  if (!m) return false;
  return !GENERATED_SUFFIX_RE.test(m[2]);
}

/** The ordinal of pod `podName` in StatefulSet `setName` (`<set>-<ordinal>`), or undefined when the name is not of that form. */
export function ordinalOf(podName: string, setName: string): number | undefined {
  if (!podName.startsWith(`${setName}-`)) return undefined;
  const rest = podName.slice(setName.length + 1);
  return ORDINAL_ONLY_RE.test(rest) ? Number(rest) : undefined;
}
