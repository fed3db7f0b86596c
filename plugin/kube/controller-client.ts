/**
 * The controller's client: the full ControllerApi over client-node's wire,
 * with client-node's Watch for the watches (it streams; the caller restarts
 * a watch whenever it ends). The controller is one long-lived process, so
 * loading the Kubernetes client once costs it nothing that matters.
 */
import { Watch } from "@kubernetes/client-node";
import { clientNodeWire, loadKubeConfig } from "./client-node-wire.ts";
import type { ControllerApi } from "./controller-api.ts";
import { type KubeClientOptions, apiOver } from "./kube-client.ts";
import { transportOver } from "./kube-request.ts";

/** Loads the kubeconfig (throws if it cannot; no path: in-cluster configuration) and returns the controller's client. */
export function createControllerClient(kubeconfigPath: string | undefined, options: KubeClientOptions): ControllerApi {
  const kc = loadKubeConfig(kubeconfigPath);
  const t = transportOver(clientNodeWire(kc), options.requestTimeoutMs, options.beforeWrite);
  return apiOver(
    t,
    (path, onEvent) =>
      new Promise<void>((resolve) => {
        new Watch(kc)
          .watch(
            path,
            { allowWatchBookmarks: false },
            (type, obj) => onEvent(type, obj),
            () => resolve(),
          )
          .catch(() => resolve());
      }),
  );
}
