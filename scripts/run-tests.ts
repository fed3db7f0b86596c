/**
 * Runs every test group (Node and bun), streams their output, and ends with
 * one summary line: "tests: N passed, N failed". Exits non-zero if any group
 * failed, crashed, or ran no test.
 *
 *   node --import tsx scripts/run-tests.ts [GROUP-SUBSTRING...]
 *
 * The cluster group starts the test control plane (scripts/testenv.sh up)
 * first. If this run started it, the run stops it again (testenv.sh down)
 * when the group is over, and checks that none of its daemons is left; a
 * control plane that was already up is left up. After the groups that make
 * network namespaces and links, it checks that none of theirs is left.
 *
 * The real-node group (alone: run-tests.ts "real node") runs after it, on a control plane of its own
 * (BERTH_TESTENV_DIR=/tmp/berth-realnode, BERTH_TESTENV_NODE=1: kube-scheduler,
 * containerd, kubelet and kube-proxy too), started and stopped the same way;
 * afterwards nothing of the node may be left: no daemon, shim or container
 * process, no interface, no kube-proxy rule, no mount point it created.
 */
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { daemonsLeft, down, planeEnv, REAL_NODE_DIR, type Up, up, type Where } from "../test/support/control-plane.ts";
import { type HostState, hostState, nodeLeftovers } from "../test/support/realnode/host-leftovers.ts";

const root = resolve(import.meta.dirname, "..");
const uvu = ["--import", "tsx", "node_modules/uvu/bin.js"];
interface Group {
  name: string;
  cmd: string;
  args: string[];
  /** Needs the test control plane: the default one, or (`node`) one with a real node in its own directory. */
  cluster?: boolean;
  node?: boolean;
  /** Its network namespaces, given the group's pid; and the bridges it makes. */
  net?: { netns: (pid: number) => RegExp; bridges: RegExp };
}
const groups: Group[] = [
  { name: "unit", cmd: "node", args: [...uvu, "test/unit", "\\.test\\.ts$"] },
  { name: "store contract (better-sqlite3)", cmd: "node", args: [...uvu, "test/store", "\\.test\\.ts$"] },
  { name: "store contract (bun:sqlite)", cmd: "node_modules/.bin/bun", args: ["test/store/bun-sqlite.bun.ts"] },
  { name: "kube client under bun", cmd: "node_modules/.bin/bun", args: ["test/unit/kube/kube-client.bun.ts"] },
  { name: "compiled binary", cmd: "node", args: [...uvu, "test/binary", "\\.test\\.ts$"] },
  {
    name: "bridge chain in network namespaces",
    cmd: "node",
    args: [...uvu, "test/chain", "\\.test\\.ts$"],
    net: { netns: (pid) => new RegExp(`^berth-t-${pid}-`), bridges: /^berthbr0$/ },
  },
  // Starts etcd, kube-apiserver and kube-controller-manager first (building them once, ~10 min, then cached).
  {
    name: "cluster mode on the test control plane",
    cmd: "node",
    args: [...uvu, "test/cluster", "\\.test\\.ts$"],
    cluster: true,
    net: { netns: (pid) => new RegExp(`^bc-[^-]+-${pid}-`), bridges: /^bc\w+0$/ },
  },
  // Its own control plane with a real node: the shipped manifests, the image, kubelet and containerd calling berth.
  {
    name: "real node",
    cmd: "node",
    args: [...uvu, "test/realnode", "\\.test\\.ts$"],
    cluster: true,
    node: true,
    net: { netns: () => /^cni-/, bridges: /^berth0$/ },
  },
];

/** The running group's process: a signal to this runner is passed on to it. */
let child: ReturnType<typeof spawn> | undefined;
let interrupted: NodeJS.Signals | undefined;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    // Ctrl-C reaches the group's process too (same process group); a kill of this one alone is passed on.
    if (!interrupted) process.stderr.write(`\nrun-tests: ${sig}: stopping after the current group (and the control plane, if this run started it)\n`);
    interrupted = sig;
    child?.kill(sig);
  });
}

interface GroupRun {
  status: number | null;
  error?: Error;
  stdout: string;
  pid?: number;
}

/** Runs one group, streaming its output; resolves with its exit status and stdout. */
function runGroup(g: Group, env: Record<string, string | undefined>): Promise<GroupRun> {
  return new Promise((done) => {
    let stdout = "";
    const c = spawn(g.cmd, g.args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    const finish = (r: GroupRun) => {
      child = undefined;
      done({ ...r, pid: c.pid });
    };
    c.stdout!.on("data", (d) => {
      stdout += d;
      process.stdout.write(d);
    });
    c.stderr!.on("data", (d) => process.stderr.write(d));
    c.on("error", (error) => finish({ status: null, error, stdout }));
    c.on("close", (status) => finish({ status, stdout }));
  });
}

function ipJson(args: string[]): any[] {
  const r = spawnSync("ip", ["-j", ...args], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : [];
}

/** What the group left behind: its network namespaces, and bridges of its kind that no other run uses (no ports). */
function netLeftovers(net: NonNullable<Group["net"]>, pid: number | undefined, bridgesBefore: Set<string>): string[] {
  const netns =
    pid === undefined
      ? []
      : ipJson(["netns", "list"])
          .map((n: { name: string }) => n.name)
          .filter((n) => net.netns(pid).test(n));
  const bridges = ipJson(["link", "show", "type", "bridge"])
    .map((l: { ifname: string }) => l.ifname)
    .filter((b) => net.bridges.test(b) && !bridgesBefore.has(b) && ipJson(["link", "show", "master", b]).length === 0);
  return [...netns.map((n) => `netns ${n}`), ...bridges.map((b) => `bridge ${b}`)];
}

const only = process.argv.slice(2);
let passed = 0;
let failed = 0;
let plane: Up | undefined;
/** The host before a real node started. */
let hostBefore: HostState | undefined;

function stopPlane(): void {
  if (!plane?.startedByUs) return;
  process.stdout.write(`--- control plane: started by this run; stopping it (scripts/testenv.sh down)\n`);
  const node = !!plane.where.node;
  const status = down(plane.where);
  const left = daemonsLeft(plane.plane.dir, node).map((p) => `${p.pid} ${p.cmd}`);
  if (node && hostBefore) left.push(...nodeLeftovers(hostBefore));
  if (status !== 0 || left.length) {
    failed += 1;
    process.stdout.write(`--- control plane: FAILED to stop (testenv.sh down exited ${status}; left: ${left.join("; ") || "none"})\n`);
  }
  plane = undefined;
}

const selected = only.length ? groups.filter((g) => only.some((o) => g.name.includes(o))) : groups;
// A run that will start a real node builds its binaries in the first control plane's build: one `make`.
if (selected.some((g) => g.node)) process.env.BERTH_K8S_NODE ??= "1";

try {
  for (const g of selected) {
    if (interrupted) break;
    process.stdout.write(`\n=== ${g.name}\n`);
    const env: Record<string, string | undefined> = { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" };
    if (g.cluster) {
      const where: Where = g.node ? { dir: REAL_NODE_DIR, node: true } : {};
      if (g.node) hostBefore = hostState();
      try {
        plane = up(where);
      } catch (err) {
        failed += 1;
        process.stdout.write(`--- ${g.name}: FAILED (${(err as Error).message})\n`);
        continue;
      }
      process.stdout.write(
        `--- control plane: ${plane.startedByUs ? "started by this run" : "already up before this run: left running"} (${plane.plane.server})\n`,
      );
      Object.assign(env, planeEnv(plane.plane), g.node ? plane.vars : {});
    }
    const bridgesBefore = new Set<string>(ipJson(["link", "show", "type", "bridge"]).map((l: { ifname: string }) => l.ifname));
    const r = await runGroup(g, env);
    const plain = r.stdout.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), ""); // without colour codes
    const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
    const ok = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
    passed += ok;
    failed += total - ok;
    if (r.status !== 0 || total === 0) {
      if (total - ok === 0) failed += 1; // crashed, or ran nothing: count it
      process.stdout.write(`--- ${g.name}: FAILED (exit ${r.status}${r.error ? `, ${r.error.message}` : ""}${total === 0 ? ", no test ran" : ""})\n`);
    }
    if (g.net) {
      const left = netLeftovers(g.net, r.pid, bridgesBefore);
      if (left.length) {
        failed += 1;
        process.stdout.write(`--- ${g.name}: FAILED to clean up: left ${left.join(", ")}\n`);
      }
    }
    if (g.cluster) stopPlane();
  }
} finally {
  stopPlane();
}
process.stdout.write(`\ntests: ${passed} passed, ${failed} failed\n`);
process.exitCode = failed === 0 && passed > 0 && !interrupted ? 0 : 1;
