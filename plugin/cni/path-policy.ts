/**
 * Which host paths a network configuration may name. Whoever may create a
 * NetworkAttachmentDefinition (a namespaced object) writes the ipam block
 * that root runs on every node, so `dataDir`, `logFile` and `kubeconfig` are
 * held to documented prefixes. More can be allowed only by the node itself:
 * a root-owned file that no one else may write (default
 * /etc/cni/net.d/berth.d/node.json, `{"extraPathPrefixes": ["/srv/berth/"]}`),
 * never by the network configuration.
 */
import { readFileSync, statSync } from "node:fs";
import { normalize } from "node:path";
import type { IpamConfig } from "../ipam/config.ts";
import { CniError, Code } from "./cni-error.ts";

/** The node's own berth configuration; BERTH_NODE_CONFIG (the runtime's environment, root's to set) moves it. */
export const NODE_CONFIG_PATH = "/etc/cni/net.d/berth.d/node.json";

/**
 * Where each path field may point without the node's say-so. The kubeconfig
 * is held to berth's own directory, not all of /etc/cni/net.d/: other
 * components keep their credentials there too (Multus'
 * /etc/cni/net.d/multus.d/multus.kubeconfig), and a network configuration
 * must not make berth act with another component's identity.
 */
export const DEFAULT_PREFIXES = {
  dataDir: ["/var/lib/cni/"],
  logFile: ["/var/log/"],
  kubeconfig: ["/etc/cni/net.d/berth.d/"],
} as const;

type PathField = keyof typeof DEFAULT_PREFIXES;

/** Throws CNI error 7 naming the field and value when a path is outside what this node allows. */
export function checkPaths(ipam: IpamConfig, env: Record<string, string | undefined>): void {
  let extra: string[] | undefined;
  for (const field of Object.keys(DEFAULT_PREFIXES) as PathField[]) {
    const value = ipam[field];
    if (value === undefined) continue;
    const path = normalize(value);
    const allowed = (prefixes: readonly string[]) => prefixes.some((p) => path === p.replace(/\/$/, "") || path.startsWith(p.endsWith("/") ? p : `${p}/`));
    if (allowed(DEFAULT_PREFIXES[field])) continue;
    extra ??= nodePrefixes(env.BERTH_NODE_CONFIG || NODE_CONFIG_PATH);
    if (allowed(extra)) continue;
    throw new CniError(
      Code.InvalidConfig,
      `invalid ipam.${field} ${JSON.stringify(value)}: outside ${DEFAULT_PREFIXES[field].join(", ")}`,
      `a node may allow more paths in ${env.BERTH_NODE_CONFIG || NODE_CONFIG_PATH} ("extraPathPrefixes"), never the network configuration`,
    );
  }
}

/** The extra prefixes the node's configuration allows (none when there is no such file). */
function nodePrefixes(file: string): string[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch {
    return [];
  }
  // Only root may widen what root will write: a file anyone else can change counts for nothing.
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new CniError(
      Code.InvalidConfig,
      `node configuration ${file} must be owned by root and writable by no one else`,
      `owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CniError(Code.InvalidConfig, `node configuration ${file} is not valid JSON`, (err as Error).message, { cause: err });
  }
  const list = (parsed as { extraPathPrefixes?: unknown })?.extraPathPrefixes ?? [];
  if (!Array.isArray(list) || list.some((p) => typeof p !== "string" || !p.startsWith("/") || normalize(p) === "/")) {
    throw new CniError(
      Code.InvalidConfig,
      `invalid extraPathPrefixes ${JSON.stringify(list)} in node configuration ${file}`,
      "must be a list of absolute directories other than /",
    );
  }
  return (list as string[]).map((p) => normalize(p));
}
