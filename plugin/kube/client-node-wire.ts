/**
 * HTTP to the API server through @kubernetes/client-node: its kubeconfig
 * loader, its authentication (exec credential plugins, auth providers, basic
 * auth, impersonation, proxies) and its HTTP library (node-fetch with the
 * kubeconfig's agent under Node, Bun's native fetch in the compiled binary).
 * This is how berth talked to the API server before the direct wire. The
 * controller uses it (its watches need client-node anyway); the plugin loads
 * it only for a kubeconfig the small reader leaves to it (open-transport.ts).
 */
import { HttpMethod, IsomorphicFetchHttpLibrary, KubeConfig, RequestContext } from "@kubernetes/client-node";
import type { Wire } from "./kube-request.ts";

/**
 * Loads the kubeconfig at `path` (no path: the in-cluster configuration);
 * throws if it cannot, names no current cluster, or sets insecure-skip-tls-verify.
 */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig ${path ?? "(in-cluster)"} names no current cluster`);
  // The token would go to whoever answers: berth talks only to a server it can verify.
  if (cluster.skipTLSVerify)
    throw new Error(
      `kubeconfig ${path ?? "(in-cluster)"} sets insecure-skip-tls-verify: berth does not send its credentials to an unverified server; give certificate-authority(-data) instead`,
    );
  return kc;
}

/** The wire for a loaded KubeConfig: credentials applied per request (a rotated token, an exec plugin's cache). */
export function clientNodeWire(kc: KubeConfig): Wire {
  const server = kc.getCurrentCluster()!.server;
  const http = new IsomorphicFetchHttpLibrary();
  return {
    server,
    async send(req, beforeSend) {
      const ctx = new RequestContext(server + req.path, HttpMethod[req.method]); // as client-node: the server URL may carry a path prefix
      for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) ctx.setQueryParam(k, v);
      for (const [k, v] of Object.entries(req.headers)) ctx.setHeaderParam(k, v);
      if (req.body !== undefined) ctx.setBody(req.body);
      await kc.applySecurityAuthentication(ctx); // per request: CA, client certificate, a rotated token, proxy agent
      ctx.setSignal(AbortSignal.timeout(req.timeoutMs) as never);
      beforeSend();
      const rsp = await http.send(ctx).toPromise();
      return { status: rsp.httpStatusCode, date: rsp.headers?.date, text: await rsp.body.text() };
    },
  };
}

/** Loads the kubeconfig with client-node (see loadKubeConfig) and returns its wire. */
export function loadClientNodeWire(path: string | undefined): Wire {
  return clientNodeWire(loadKubeConfig(path));
}
