/**
 * The controller's client: the full ControllerApi over client-node's wire,
 * with client-node's Watch for the watches (it streams; the caller restarts
 * a watch whenever it ends). The controller is one long-lived process, so
 * loading the Kubernetes client once costs it nothing that matters.
 */
import { Watch } from "@kubernetes/client-node";
import { clientNodeWire, loadKubeConfig } from "./client-node-wire.ts";
import type { ControllerApi } from "./controller-api.ts";
import { apiOver, type KubeClientOptions } from "./kube-client.ts";
import { transportOver } from "./kube-request.ts";

/** Loads the kubeconfig (throws if it cannot; no path: in-cluster configuration) and returns the controller's client. */
export function createControllerClient(kubeconfigPath: string | undefined, options: KubeClientOptions): ControllerApi {
  const kc = loadKubeConfig(kubeconfigPath);
  const t = transportOver(clientNodeWire(kc), options.requestTimeoutMs, options.beforeWrite);
  // The caller restarts a watch whenever it ends, from the last resourceVersion seen (bookmarks keep it fresh
  // while nothing of the kind changes).
  return apiOver(
    t,
    (path, onEvent, from) =>
      new Promise<{ resourceVersion?: string }>((resolve) => {
        let last = from;
        let expired = false;
        // "Too old" comes as an ERROR event with code 410, or as the watch request's own status.
        const end = (err?: unknown) => resolve({ resourceVersion: expired || (err as { statusCode?: number } | null)?.statusCode === 410 ? undefined : last });
        new Watch(kc)
          .watch(
            path,
            { allowWatchBookmarks: true, ...(from ? { resourceVersion: from } : {}) },
            (type, obj) => {
              if (type === "ERROR") {
                if ((obj as { code?: number } | undefined)?.code === 410) expired = true;
                return;
              }
              const rv = (obj as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
              if (rv) last = rv;
              if (type !== "BOOKMARK") onEvent(type, obj);
            },
            end,
          )
          .catch(end);
      }),
  );
}
