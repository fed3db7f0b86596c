/**
 * What a pod object itself says it uses: `status.podIPs` (the primary
 * interface) and Multus' `k8s.v1.cni.cncf.io/network-status` annotation,
 * which berth does not write. Evidence beside berth's own records, read by
 * `berth check` and by the controller when it must tell which of a pod's
 * claims is the one in use.
 */
import { type Family, parseAddress } from "./ip.ts";

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

/** One address a pod shows, parsed, and where: "status.podIPs", or its network-status entry. */
export interface ShownAddress {
  address: string;
  family: Family;
  value: bigint;
  /** "status.podIPs", or the network-status entry's interface (else its name). */
  where: string;
  /** The network-status entry's interface, when it names one. */
  interface?: string;
}

/** Every address the pod shows, in `status.podIPs` then in network-status; what does not parse is no evidence. */
export function shownAddresses(pod: ShowingPod): ShownAddress[] {
  const out: ShownAddress[] = [];
  const add = (text: string | undefined, where: string, iface?: string) => {
    const address = text?.split("/")[0] ?? "";
    const a = parseAddress(address);
    if (a) out.push({ address, ...a, where, ...(iface ? { interface: iface } : {}) });
  };
  for (const ip of (pod.status as { podIPs?: { ip?: string }[] } | undefined)?.podIPs ?? []) add(ip.ip, "status.podIPs");
  for (const n of networkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION])) {
    for (const ip of n.ips ?? []) add(ip, n.interface ?? n.name ?? "network-status", n.interface);
  }
  return out;
}

/**
 * The addresses of `family` the pod shows on interface `ifname`: its
 * network-status entry for that interface, and for eth0 its `status.podIPs`.
 */
export function shownOn(pod: ShowingPod, ifname: string, family: Family): string[] {
  const on = (s: ShownAddress) => s.interface === ifname || (ifname === "eth0" && s.where === "status.podIPs");
  return [
    ...new Set(
      shownAddresses(pod)
        .filter((s) => s.family === family && on(s))
        .map((s) => s.address),
    ),
  ];
}
