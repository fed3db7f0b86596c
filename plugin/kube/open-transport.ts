/**
 * Opens the plugin's transport for a kubeconfig: the direct wire when the
 * small reader understands the kubeconfig (what `berth install` writes, and
 * tokens, token files, CA and client certificates as operators write them),
 * otherwise client-node's, loaded only then.
 */
import { readKubeconfig } from "./kubeconfig-reader.ts";
import { directWire } from "./direct-wire.ts";
import { type BeforeWrite, type KubeTransport, type TimeLeft, transportOver } from "./kube-request.ts";

/**
 * client-node's wire, imported by a specifier the bundler cannot fold, so the
 * cluster entry of the compiled binary does not carry the Kubernetes client
 * (bundled, even unevaluated, it costs every start). It is an entry point of
 * its own (see the build script). The path resolves the same from this file
 * in the source tree (plugin/kube/) and from the cluster entry it is bundled
 * into (cluster/ at the root of the bundle).
 */
const CLIENT_NODE_WIRE = ["..", "kube", "client-node-wire.ts"].join("/");

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
  const { loadClientNodeWire } = (await import(CLIENT_NODE_WIRE)) as typeof import("./client-node-wire.ts");
  return transportOver(loadClientNodeWire(kubeconfigPath), requestTimeoutMs, beforeWrite, timeLeft);
}
