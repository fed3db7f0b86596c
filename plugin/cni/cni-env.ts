/** Reads the CNI_* environment the runtime sets, per the spec's rules for each command. */
import { CNI_COMMANDS, type CniCommand, type Invocation } from "../ipam/command.ts";
import { CniError, Code } from "./cni-error.ts";

/** Which variables each command cannot do without. */
const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  GC: [],
  STATUS: [],
  VERSION: [],
};

const KNOWN_ARGS = new Set(["IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID", "K8S_POD_INFRA_CONTAINER_ID"]);
// libcni's rule for container IDs.
const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Reads and checks the environment; empty values count as unset. Throws CniError code 4. */
export function readCniEnv(env: Record<string, string | undefined>): Invocation {
  const get = (k: string) => (env[k] === "" ? undefined : env[k]);
  const command = get("CNI_COMMAND");
  if (command === undefined) throw new CniError(Code.InvalidEnv, "CNI_COMMAND is not set");
  if (!(CNI_COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(Code.InvalidEnv, `invalid CNI_COMMAND ${JSON.stringify(command)}`, `expected one of ${CNI_COMMANDS.join(", ")}`);
  }
  const cmd = command as CniCommand;
  const missing = REQUIRED[cmd].filter((k) => get(k) === undefined);
  if (missing.length) throw new CniError(Code.InvalidEnv, `${missing.join(", ")} not set (required for ${cmd})`);

  const containerId = get("CNI_CONTAINERID") ?? "";
  if (containerId && !CONTAINER_ID_RE.test(containerId)) {
    throw new CniError(
      Code.InvalidEnv,
      `invalid CNI_CONTAINERID ${JSON.stringify(containerId)}`,
      "must start with a letter or digit, then letters, digits, '_', '.', '-'",
    );
  }
  const ifname = get("CNI_IFNAME") ?? "";
  if (ifname && (ifname.length > 15 || ifname === "." || ifname === ".." || /[/:\s]/.test(ifname))) {
    throw new CniError(Code.InvalidEnv, `invalid CNI_IFNAME ${JSON.stringify(ifname)}`, "at most 15 characters, no '/', ':' or whitespace");
  }
  return { command: cmd, containerId, netns: get("CNI_NETNS") ?? "", ifname, args: parseCniArgs(get("CNI_ARGS") ?? "") };
}

/**
 * Parses "K=V;K2=V2" on the first "=" of each pair. Unknown keys are an
 * error unless IgnoreUnknown is set, as in the reference plugins.
 */
export function parseCniArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  if (!text) return args;
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CniError(Code.InvalidEnv, `invalid CNI_ARGS pair ${JSON.stringify(pair)}`, "expected KEY=VALUE");
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const ignore = /^(1|true)$/i.test(args.get("IgnoreUnknown") ?? "");
  if (!ignore) {
    const unknown = [...args.keys()].filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length) {
      throw new CniError(Code.InvalidEnv, `unknown CNI_ARGS key ${JSON.stringify(unknown[0])}`, "set IgnoreUnknown=1 to allow keys berth does not use");
    }
  }
  return args;
}
