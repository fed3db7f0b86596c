/** The plugin's kubeconfig, built from a pod's service-account token and CA. */

/** What a kubeconfig for one API server and one token needs. */
export interface KubeconfigParts {
  /** `https://host:port` */
  server: string;
  /** The CA bundle, PEM text as read from the pod's `ca.crt`. */
  caPem: string;
  /** The bearer token, without surrounding whitespace. */
  token: string;
}

/**
 * The API server's URL inside a pod: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
 * (an IPv6 host in brackets), or undefined when the host is not set.
 */
export function inClusterServer(env: Record<string, string | undefined>): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  if (!host) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT?.trim() || "443";
  return `https://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

/**
 * kubeconfig text with the CA embedded as `certificate-authority-data` and the
 * token inline, so it works on the host, where the pod's files are not
 * visible. Values are written as JSON strings, which are valid YAML
 * double-quoted scalars, so no value can break the document.
 */
export function renderKubeconfig(parts: KubeconfigParts): string {
  const q = JSON.stringify;
  const caData = Buffer.from(parts.caPem).toString("base64");
  return [
    "# Written by `berth install` for the berth CNI plugin; rewritten when the",
    "# service-account token or CA changes. Do not edit.",
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "  - name: berth",
    "    cluster:",
    `      server: ${q(parts.server)}`,
    `      certificate-authority-data: ${q(caData)}`,
    "users:",
    "  - name: berth",
    "    user:",
    `      token: ${q(parts.token)}`,
    "contexts:",
    "  - name: berth",
    "    context:",
    "      cluster: berth",
    "      user: berth",
    "current-context: berth",
    "",
  ].join("\n");
}
