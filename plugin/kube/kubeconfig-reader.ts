/**
 * A small reader of the kubeconfig fields the plugin's hot path needs, so a
 * CNI command does not load @kubernetes/client-node (70 ms and 85 ms of CPU
 * per start in the compiled binary, measured). It reads what `berth install`
 * writes and what operators commonly write: the current context's cluster
 * (server, certificate-authority / -data, tls-server-name) and user (token,
 * token-file, client-certificate / -key and their -data forms), and the
 * in-cluster configuration. Anything more (exec credential plugins, auth
 * providers, basic auth, impersonation, proxy-url, a plain-http server, or
 * YAML the runtime's parser refuses) is answered with `fallback`: the caller
 * then loads client-node's KubeConfig, so every kubeconfig that worked
 * before still works, and one that did not fails as it did.
 *
 * Field semantics follow client-node's loader (what berth used before), so a
 * kubeconfig means the same on both paths: every entry is validated as it
 * does it, a file wins over its -data form, relative certificate paths are
 * relative to the kubeconfig's directory, an inline token wins over
 * token-file, and `insecure-skip-tls-verify: true` is refused outright.
 * Unlike client-node, the token file is read again for every request (so a
 * rotated token is used) and a relative token-file is relative to the
 * kubeconfig too, as kubectl reads it.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { parseYaml, type YamlParse } from "./parse-yaml.ts";

/** What the direct transport needs to reach one API server and prove who it is. */
export interface DirectConfig {
  /** The kubeconfig's path, or "(in-cluster)": for messages. */
  source: string;
  /** `https://host:port[/prefix]`, without a trailing slash. */
  server: string;
  /** PEM CA bundle to verify the server with; absent: the system's CAs. */
  ca?: string;
  /** PEM client certificate and key. */
  cert?: string;
  key?: string;
  /** The TLS server name to verify instead of the server URL's host. */
  serverName?: string;
  /** The bearer token for the next request (an inline one, or its file read now), if the user has one. */
  token(): string | undefined;
}

/** Either the direct configuration, or why the kubeconfig needs client-node's loader. */
export type KubeconfigRead = { direct: DirectConfig; fallback?: undefined } | { fallback: string; direct?: undefined };

/** Where a pod's service-account token and CA are mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface ReadOptions {
  /** For the in-cluster configuration (default: process.env). */
  env?: Record<string, string | undefined>;
  /** For the in-cluster configuration (default: SERVICE_ACCOUNT_DIR). */
  serviceAccountDir?: string;
  /** The YAML parser (default: the runtime's, parse-yaml.ts). */
  parse?: YamlParse;
}

type Obj = Record<string, unknown>;

/** User fields that only client-node's loader serves, and what each is. */
const USER_FALLBACK: Record<string, string> = {
  exec: "an exec credential plugin",
  "auth-provider": "an auth provider",
  username: "basic authentication",
  password: "basic authentication",
  as: "impersonation",
  "as-uid": "impersonation",
  "as-groups": "impersonation",
  "as-user-extra": "impersonation",
};

/**
 * Reads the kubeconfig at `path` (no path: the in-cluster configuration).
 * Throws an Error naming the file and the field when the kubeconfig is
 * malformed, names no current cluster, sets insecure-skip-tls-verify, or
 * names a file that cannot be read.
 */
export function readKubeconfig(path: string | undefined, opts: ReadOptions = {}): KubeconfigRead {
  return path === undefined ? inCluster(opts) : fromFile(path, opts.parse ?? parseYaml);
}

function fromFile(path: string, parse: YamlParse): KubeconfigRead {
  const fail = (what: string): never => {
    throw new Error(`kubeconfig ${path}: ${what}`);
  };
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail(`cannot read it (${e.code ?? e.name}: ${e.message})`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    // Bun's parser and js-yaml (client-node's) may disagree on exotic YAML: client-node decides, as it always did.
    return { fallback: `YAML the reader's parser refuses (${(err as Error).message.split("\n")[0]})` };
  }
  if (!isObj(doc)) return fail("not a kubeconfig (the document is not a mapping)");
  const clusters = entries(doc.clusters, "clusters", "cluster", fail);
  const users = entries(doc.users, "users", "user", fail);
  const contexts = entries(doc.contexts, "contexts", "context", fail);
  for (const c of clusters) if (!c.body?.server) fail(`clusters[${c.index}].cluster.server is missing`);
  for (const c of contexts) if (!c.body?.cluster) fail(`contexts[${c.index}].context.cluster is missing`);

  const context = contexts.find((c) => c.name === doc["current-context"]);
  const cluster = context && clusters.find((c) => c.name === context.body!.cluster);
  if (!cluster) return fail("names no current cluster");
  const c = cluster.body!;
  const cf = `clusters[${cluster.index}].cluster`;
  // The token would go to whoever answers: berth talks only to a server it can verify.
  if (c["insecure-skip-tls-verify"] === true)
    fail("sets insecure-skip-tls-verify: berth does not send its credentials to an unverified server; give certificate-authority(-data) instead");
  const server = str(c.server, `${cf}.server`, fail).replace(/\/$/, "");
  if (c["proxy-url"] !== undefined) return { fallback: `${cf}.proxy-url (a proxy)` };
  if (!server.startsWith("https://")) return { fallback: `${cf}.server is not https` };

  const user = context.body!.user === undefined ? undefined : users.find((u) => u.name === context.body!.user);
  const u = user?.body ?? {};
  const uf = `users[${user?.index}].user`;
  for (const [field, what] of Object.entries(USER_FALLBACK)) if (u[field] !== undefined && u[field] !== null) return { fallback: `${uf}.${field} (${what})` };

  const dir = dirname(path);
  const file = (field: string, obj: Obj, at: string) => {
    const v = obj[field];
    if (v === undefined || v === null || v === "") return undefined;
    const p = str(v, `${at}.${field}`, fail);
    return isAbsolute(p) ? p : join(dir, p);
  };
  /** A file field, else its -data form (base64), as client-node reads them. */
  const pem = (field: string, obj: Obj, at: string) => {
    const f = file(field, obj, at);
    if (f) return readOrFail(f, `${at}.${field}`, fail);
    const data = obj[`${field}-data`];
    if (data === undefined || data === null || data === "") return undefined;
    return Buffer.from(str(data, `${at}.${field}-data`, fail), "base64").toString("utf8");
  };
  const inline = u.token === undefined || u.token === null || u.token === "" ? undefined : str(u.token, `${uf}.token`, fail);
  const tokenFile = inline === undefined ? file("token-file", u, uf) : undefined;
  const direct: DirectConfig = {
    source: path,
    server,
    ca: pem("certificate-authority", c, cf),
    cert: pem("client-certificate", u, uf),
    key: pem("client-key", u, uf),
    serverName: c["tls-server-name"] ? str(c["tls-server-name"], `${cf}.tls-server-name`, fail) : undefined,
    token: tokenFile ? () => readOrFail(tokenFile, `${uf}.token-file`, fail).trim() : () => inline,
  };
  direct.token(); // an unreadable token file is a configuration error now, not a failed request later
  return { direct };
}

/** The pod's own configuration: the service host and port from the environment, its mounted CA and token. */
function inCluster(opts: ReadOptions): KubeconfigRead {
  const env = opts.env ?? process.env;
  const dir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const fail = (what: string): never => {
    throw new Error(`in-cluster configuration: ${what}`);
  };
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return fail("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  // client-node takes these ports for plain http (which it then refuses): leave them to it.
  if (["80", "8080", "8001"].includes(port)) return { fallback: `KUBERNETES_SERVICE_PORT=${port} (plain http)` };
  const tokenFile = join(dir, "token");
  const direct: DirectConfig = {
    source: "(in-cluster)",
    server: `https://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`,
    ca: readOrFail(join(dir, "ca.crt"), "service-account CA", fail),
    token: () => readOrFail(tokenFile, "service-account token", fail).trim(),
  };
  direct.token();
  return { direct };
}

interface Entry {
  index: number;
  name: unknown;
  body: Obj | undefined;
}

/** A list of named entries, validated as client-node validates them (anything but a list: none). */
function entries(list: unknown, key: string, bodyKey: string, fail: (what: string) => never): Entry[] {
  if (!Array.isArray(list)) return [];
  return list.map((e, index) => {
    if (!isObj(e) || !e.name) fail(`${key}[${index}].name is missing`);
    const body = (e as Obj)[bodyKey];
    // A user without a body is a user without credentials; a cluster or context needs one.
    if (bodyKey !== "user" && !isObj(body)) fail(`${key}[${index}].${bodyKey} is missing`);
    return { index, name: (e as Obj).name, body: isObj(body) ? body : undefined };
  });
}

function readOrFail(path: string, field: string, fail: (what: string) => never): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return fail(`${field} ${path}: cannot read it (${e.code ?? e.name}: ${e.message})`);
  }
}

/** A scalar as text: YAML reads an unquoted all-digit token as a number, which client-node sent as it reads. */
function str(v: unknown, field: string, fail: (what: string) => never): string {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : fail(`${field} is not a string`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
