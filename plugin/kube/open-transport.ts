/**
 * Opens the plugin's transport for a kubeconfig: the direct wire when the
 * small reader understands the kubeconfig (what `berth install` writes, and
 * tokens, token files, CA and client certificates as operators write them),
 * otherwise client-node's, loaded only then.
 */
import { lazySpecifier } from "../support/lazy-entries.ts";
import { directWire } from "./direct-wire.ts";
import { type BeforeWrite, type KubeTransport, type TimeLeft, transportOver } from "./kube-request.ts";
import { readKubeconfig } from "./kubeconfig-reader.ts";

/**
 * Reads the kubeconfig at `kubeconfigPath` (no path: the in-cluster
 * configuration) and returns its transport; rejects, naming the file and the
 * field, when the kubeconfig cannot be used.
 */
export async function openTransport(
  kubeconfigPath: string | undefined,
  requestTimeoutMs: number,
  beforeWrite?: BeforeWrite,
  timeLeft?: TimeLeft,
): Promise<KubeTransport> {
  const read = readKubeconfig(kubeconfigPath);
  if (read.direct) return transportOver(directWire(read.direct), requestTimeoutMs, beforeWrite, timeLeft);
  // client-node's wire is an entry of its own (support/lazy-entries.ts), so the cluster entry does not carry the
  // Kubernetes client. Depth 1: from this file (plugin/kube/) as from the entry it is bundled into (cluster/, controller/).
  const { loadClientNodeWire } = (await import(lazySpecifier("clientNodeWire", 1))) as typeof import("./client-node-wire.ts");
  return transportOver(loadClientNodeWire(kubeconfigPath), requestTimeoutMs, beforeWrite, timeLeft);
}
