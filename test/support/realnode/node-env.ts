/**
 * The real node of scripts/testenv-node.sh, as the real-node test sees it:
 * the API as admin (the one admin client, ../kube/admin-client.ts; kubectl
 * only for its own output and the documentation's commands), the node's
 * mount namespace (where the DaemonSet's host paths are), containerd through
 * `ctr`, pods' sandboxes and network namespaces, and berth's log lines in
 * containerd's log (the runtime passes a plugin's stderr on to its own).
 *
 * Run: npm run build && node --import tsx scripts/run-tests.ts "real node"
 * (scripts/run-tests.ts starts the control plane with the node and passes
 * the variables below; by hand: eval "$(BERTH_TESTENV_DIR=/tmp/berth-realnode
 * BERTH_TESTENV_NODE=1 bash scripts/testenv.sh up)").
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { PodObject } from "../../../plugin/kube/kube-api.ts";
import { AdminClient } from "../kube/admin-client.ts";
import { path } from "../kube/api-paths.ts";
import type { StoredPod } from "../kube/stored.ts";
import { type LogEntry, logEntries } from "../log-lines.ts";

export const ROOT = resolve(import.meta.dirname, "../../..");

function need(key: string): string {
  const v = process.env[key];
  if (!v) {
    throw new Error(
      `${key} is not set: the real node is not up. Run node --import tsx scripts/run-tests.ts "real node", or eval "$(BERTH_TESTENV_DIR=/tmp/berth-realnode BERTH_TESTENV_NODE=1 bash scripts/testenv.sh up)" first`,
    );
  }
  return v;
}

need("BERTH_KUBECTL");
export const ADMIN_KUBECONFIG = need("BERTH_ADMIN_KUBECONFIG");
export const NODE_NAME = need("BERTH_NODE_NAME");
/** The test directories behind the node's /opt/cni/bin, /etc/cni/net.d, /var/lib/cni (testenv-node.sh). */
export const NODE_ROOT = need("BERTH_NODE_ROOT");
const NS_PIDFILE = need("BERTH_NODE_NS_PIDFILE");
export const CONTAINERD_SOCKET = need("BERTH_CONTAINERD_SOCKET");
export const CONTAINERD_LOG = need("BERTH_CONTAINERD_LOG");
if (process.getuid?.() !== 0) throw new Error("the real-node test needs root");

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}${r.error ? ` (${r.error.message})` : ""}` };
}

function must(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status}): ${r.stderr.trim().slice(0, 2000)}`);
  return r.stdout;
}

/** The API as admin (the node's control plane: run-tests.ts passes its BERTH_* variables); `admin.sync` blocks. */
export const admin = new AdminClient();

/** Server-side apply (as admin) of a YAML or JSON manifest. Throws on failure. */
export function apply(manifest: string): void {
  admin.sync.apply(manifest);
}

/** CMD in the node's mount namespace (where containerd and the kubelet run). */
export function nodeExec(args: string[]): string {
  const pid = readFileSync(NS_PIDFILE, "utf8").trim();
  return must("nsenter", ["--target", pid, "--mount", "--", ...args]);
}

/** `ctr -n k8s.io ...` against the node's containerd. */
export function ctr(args: string[]): string {
  return must("ctr", ["--address", CONTAINERD_SOCKET, "-n", "k8s.io", ...args]);
}

/** A pod with what the kubelet reports beyond what berth models: its address and conditions. */
export type Pod = StoredPod & {
  status: NonNullable<PodObject["status"]> & { podIP?: string; conditions?: { type: string; status: string }[] };
};

export function podOf(ns: string, name: string): Pod | undefined {
  return admin.sync.get<Pod>(path("pods", { ns, name }));
}

/** The pods of NS (every namespace without one) that match the label selector. */
export function podsOf(ns: string | undefined, selector?: string): Pod[] {
  return admin.sync.list<Pod>(path("pods", { ns }), { labelSelector: selector });
}

export function isReady(p: Pod | undefined): p is Pod {
  return !!p && !p.metadata.deletionTimestamp && !!p.status.podIP && !!p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
}

export interface Sandbox {
  id: string;
  pid: number;
}

/** Running tasks: container id → pid. */
function tasks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of ctr(["tasks", "ls"]).split("\n").slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id && status === "RUNNING") out.set(id, Number(pid));
  }
  return out;
}

/** The pod's running sandbox (pause) container in containerd, by the CRI's labels; undefined if none runs. */
export function sandboxOf(ns: string, name: string): Sandbox | undefined {
  const ids = ctr([
    "containers",
    "ls",
    "-q",
    `labels."io.kubernetes.pod.namespace"==${ns},labels."io.kubernetes.pod.name"==${name},labels."io.cri-containerd.kind"==sandbox`,
  ])
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
  const running = tasks();
  const live = ids.filter((id) => running.has(id));
  if (live.length > 1) throw new Error(`${ns}/${name} has ${live.length} running sandboxes: ${live.join(", ")}`);
  return live.length ? { id: live[0], pid: running.get(live[0])! } : undefined;
}

/** IPv4 addresses (address/prefix) on eth0 in the network namespace of process `pid`. */
export function eth0Addresses(pid: number): string[] {
  const links = JSON.parse(must("nsenter", ["--target", String(pid), "--net", "--", "ip", "-j", "-4", "addr", "show", "dev", "eth0"])) as {
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

/** berth's log lines in containerd's log (its plugins' stderr), parsed; containerd's own lines left out. */
export function berthLog(): LogEntry[] {
  const lines = readFileSync(CONTAINERD_LOG, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"));
  return logEntries(lines.join("\n"));
}

/** containerd's own lines that mention `text`. */
export function containerdLines(text: string): string[] {
  return readFileSync(CONTAINERD_LOG, "utf8")
    .split("\n")
    .filter((l) => !l.startsWith("{") && l.includes(text));
}

export { spTable } from "../kube/kubectl.ts";

/** Is `address` inside the first..last range of one /24 (e.g. 10.6.168.101-110)? */
export function inRange(address: string | undefined, prefix: string, first: number, last: number): boolean {
  if (!address?.startsWith(prefix)) return false;
  const n = Number(address.slice(prefix.length));
  return Number.isInteger(n) && n >= first && n <= last;
}
