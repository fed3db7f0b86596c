/**
 * What a pod object itself says it uses: `status.podIPs` (the primary
 * interface) and Multus' `k8s.v1.cni.cncf.io/network-status` annotation,
 * which berth does not write. Evidence beside berth's own records, read by
 * `berth check` and by the controller when it must tell which of a pod's
 * claims is the one in use.
 */
import { parseAddress } from "./ip.ts";

export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";

/** Multus' network-status annotation, leniently: anything that is not a list of objects is no evidence. */
export function networkStatus(text: string | undefined): { name?: string; interface?: string; ips?: string[] }[] {
  if (!text) return [];
  try {
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) ? parsed.filter((e) => e && typeof e === "object" && (e.ips === undefined || Array.isArray(e.ips))) : [];
  } catch {
    return [];
  }
}

interface ShowingPod {
  metadata: { annotations?: Record<string, string> };
  /** The pod's status as the API server returns it (berth's PodObject types only the phase). */
  status?: object;
}

/**
 * The addresses of `family` the pod shows on interface `ifname`: its
 * network-status entry for that interface, and for eth0 its `status.podIPs`.
 */
export function shownOn(pod: ShowingPod, ifname: string, family: 4 | 6): string[] {
  const texts = [
    ...networkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION])
      .filter((n) => n.interface === ifname)
      .flatMap((n) => n.ips ?? []),
    ...(ifname === "eth0" ? ((pod.status as { podIPs?: { ip?: string }[] } | undefined)?.podIPs ?? []).map((p) => p.ip ?? "") : []),
  ];
  const out = new Set<string>();
  for (const t of texts) {
    const a = parseAddress(t.split("/")[0]);
    if (a?.family === family) out.add(t.split("/")[0]);
  }
  return [...out];
}
