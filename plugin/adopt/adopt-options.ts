/** `berth adopt`'s flags, checked before anything is read: a usage error is exit code 2. */
import { SOURCES, type Source } from "./source-record.ts";

export interface AdoptArgs {
  from: Source;
  kubeconfig?: string;
  dryRun: boolean;
  output: "table" | "json";
  /** The interface when neither the records nor the pod's network-status say (Whereabouts records none). */
  interface: string;
}

/** The parsed command line (mri's output). */
type Flags = Record<string, unknown> & { _: unknown[] };

/** Linux interface names: 1-15 characters, no "/", whitespace, ":" or "%", not "." or "..". */
const IFNAME = /^(?!\.{1,2}$)[^\s/:%]{1,15}$/;

/** The arguments, or a message saying what is wrong with them. */
export function adoptOptions(flags: Flags, rest: string[]): AdoptArgs | string {
  if (rest.length) return `berth adopt takes no arguments, got ${JSON.stringify(rest.join(" "))}`;
  const from = flags.from;
  if (from === undefined || from === true || from === "") return `--from is required: ${SOURCES.join(" or ")}`;
  if (!SOURCES.includes(from as Source)) return `--from must be ${SOURCES.join(" or ")}, got ${JSON.stringify(from)}`;
  const output = (flags.o as string | undefined) ?? "table";
  if (output !== "table" && output !== "json") return `-o must be table or json, got ${JSON.stringify(output)}`;
  const ifname = flags.interface ?? "net1";
  if (typeof ifname !== "string" || !IFNAME.test(ifname))
    return `--interface must be an interface name (1-15 characters, no "/", ":", "%" or space), got ${JSON.stringify(ifname)}`;
  if (flags.kubeconfig === true || flags.kubeconfig === "") return "--kubeconfig needs a path";
  return {
    from: from as Source,
    ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig as string } : {}),
    dryRun: flags["dry-run"] === true,
    output,
    interface: ifname,
  };
}
