/**
 * What a real node (scripts/testenv-node.sh) may leave on the host, checked
 * by scripts/run-tests.ts after `testenv.sh down`: container processes, the
 * API server's dummy interface, kube-proxy's iptables chains, the sysctl it
 * changes and the mount points the node created.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** The host paths the node's mount namespace covers with test directories (as in testenv-node.sh). */
export const NODE_MOUNT_TARGETS = ["/opt/cni/bin", "/etc/cni/net.d", "/var/lib/cni", "/var/log/pods", "/var/log/containers", "/run/containerd", "/run/netns"];
const ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/all/route_localnet";

export interface HostState {
  existing: string[];
  routeLocalnet: string;
}

/** The parts of the host a real node touches, before it starts. */
export function hostState(): HostState {
  return { existing: NODE_MOUNT_TARGETS.filter((p) => existsSync(p)), routeLocalnet: readFileSync(ROUTE_LOCALNET, "utf8").trim() };
}

/** Container processes (by their in-image paths: nothing on the host runs them), as "pid argv". */
function containerProcesses(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    } catch {
      continue;
    }
    if (argv[0] === "/pause" || argv[0] === "/usr/local/bin/berth") out.push(`${pid} ${argv.join(" ").slice(0, 120)}`);
  }
  return out;
}

/** Everything of a real node still on the host, compared with `before` (empty: nothing left). */
export function nodeLeftovers(before: HostState): string[] {
  const left = containerProcesses().map((p) => `container process ${p}`);
  if (spawnSync("ip", ["link", "show", "berthapi0"], { stdio: "ignore" }).status === 0) left.push("interface berthapi0");
  const rules = spawnSync("iptables-save", [], { encoding: "utf8" }).stdout ?? "";
  const chains = [...new Set(rules.match(/KUBE-[A-Z0-9-]+/g) ?? [])];
  if (chains.length) left.push(`iptables chains ${chains.slice(0, 5).join(", ")}${chains.length > 5 ? ", ..." : ""}`);
  const now = hostState();
  for (const p of now.existing) if (!before.existing.includes(p)) left.push(`directory ${p} (created by the node)`);
  if (now.routeLocalnet !== before.routeLocalnet) left.push(`route_localnet ${now.routeLocalnet} (was ${before.routeLocalnet})`);
  if (existsSync("/run/berth-testenv-node")) left.push("/run/berth-testenv-node");
  return left;
}
