/**
 * berth vs. host-local, both run as whole CNI plugin processes, the way a
 * container runtime runs them. Run after `npm run build`:
 *
 *   node --import tsx scripts/bench.ts          (or: npm run bench)
 *
 * Environment:
 *   BENCH_N          sequential iterations (default 200)
 *   BENCH_ROUNDS     concurrent rounds (default 5)
 *   BENCH_C          concurrent ADDs per round (default 100)
 *   BENCH_DATA_ROOT  where the temporary dataDirs go (default os.tmpdir()); e.g. /dev/shm
 *   BENCH_ONLY=local skip the cluster and controller sections
 *                    to take the disk (fsync) out of the picture
 *   HOST_LOCAL       host-local binary (default /usr/lib/cni/host-local)
 *   BERTH_BIN        berth binary (default dist/berth)
 *
 * Prints a table, then one line `BENCH_JSON {...}` with every figure.
 * A failed sequential ADD/DEL or a StatefulSet pod that does not get its
 * address back aborts the run (exit 1). A concurrent round with a failed ADD
 * or duplicate addresses is left out of the figures, listed loudly at the end,
 * and makes the run exit 1 after printing everything else.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cniEnv as cniCallEnv } from "../test/harness/cni-runner.ts";
import { BERTH, ROOT, netconf } from "../test/helpers/berth.ts";
import { BenchFailure, type Timed, childCpuMs, dist, fail, intEnv, median, percentile, r2, table, timed } from "./bench-lib.ts";

const N = intEnv("BENCH_N", 200);
const ROUNDS = intEnv("BENCH_ROUNDS", 5);
const C = intEnv("BENCH_C", 100);
const WARMUP = 5;
const DATA_ROOT = process.env.BENCH_DATA_ROOT ?? tmpdir();
const HOST_LOCAL = process.env.HOST_LOCAL ?? "/usr/lib/cni/host-local";
const BUN = join(ROOT, "node_modules/.bin/bun");
const NETWORK = "bench";
// Equivalent pools: 10.6.1.1-10.6.16.254 (4094 addresses) in 10.6.0.0/16, gateway outside the range.
const SUBNET = "10.6.0.0/16";
const RANGE_START = "10.6.1.1";
const RANGE_END = "10.6.16.254";
const GATEWAY = "10.6.0.1";

type Plugin = "berth" | "host-local";
const PLUGINS: Plugin[] = ["berth", "host-local"];

// ---------------------------------------------------------------- processes

function cniEnv(command: string, containerId: string, args?: string): Record<string, string> {
  return cniCallEnv({ command, containerId, netns: `/var/run/netns/${containerId}`, ifname: "eth0", args });
}

function berthConf(dataDir: string): string {
  return JSON.stringify(
    netconf(
      dataDir,
      {
        pools: [{ name: "bench-pool", subnet: SUBNET, ips: [`${RANGE_START}-${RANGE_END}`], gateway: GATEWAY }],
        default_ipv4_ippool: ["bench-pool"],
      },
      { name: NETWORK },
    ),
  );
}

function hostLocalConf(dataDir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: NETWORK,
    type: "bridge",
    ipam: { type: "host-local", dataDir, ranges: [[{ subnet: SUBNET, rangeStart: RANGE_START, rangeEnd: RANGE_END, gateway: GATEWAY }]] },
  });
}

const BIN: Record<Plugin, string> = { berth: BERTH, "host-local": HOST_LOCAL };
const CONF: Record<Plugin, (dir: string) => string> = { berth: berthConf, "host-local": hostLocalConf };

// ---------------------------------------------------------------- bookkeeping

const tempDirs: string[] = [];
function freshDir(label: string): string {
  const d = mkdtempSync(join(DATA_ROOT, `berth-bench-${label}-`));
  tempDirs.push(d);
  return d;
}
function cleanup(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

let idSeq = 0;
const runTag = Math.random().toString(36).slice(2, 8);
const newId = (p: string) => `bench-${p === "berth" ? "b" : "h"}-${runTag}-${++idSeq}`;

/** The IPv4 address (without prefix) of a successful ADD, or fails the bench. */
function addressOf(p: string, r: Timed): string {
  if (r.status !== 0) fail(`${p} ADD failed`, r);
  let res: { ips?: { address?: string }[] };
  try {
    res = JSON.parse(r.stdout);
  } catch {
    fail(`${p} ADD printed no JSON result`, r);
  }
  const a = res.ips?.[0]?.address;
  if (typeof a !== "string") fail(`${p} ADD result has no ips[0].address`, r);
  return a.split("/")[0];
}

// ---------------------------------------------------------------- phases

/** One ADD then DEL of a fresh container; returns the timings, the ADD's CPU (the plugin process: user + system) and the address. */
async function addDel(p: Plugin, dir: string, args?: string): Promise<{ add: number; del: number; address: string; addCpu: number }> {
  const id = newId(p);
  const conf = CONF[p](dir);
  const cpu0 = childCpuMs();
  const add = await timed(BIN[p], [], cniEnv("ADD", id, args), conf);
  const addCpu = childCpuMs() - cpu0;
  const address = addressOf(p, add);
  const del = await timed(BIN[p], [], cniEnv("DEL", id, args), conf);
  if (del.status !== 0) fail(`${p} DEL failed`, del);
  return { add: add.ms, del: del.ms, address, addCpu };
}

async function sequential() {
  const dirs: Record<Plugin, string> = { berth: freshDir("seq-berth"), "host-local": freshDir("seq-hl") };
  const t: Record<Plugin, { add: number[]; del: number[]; addCpu: number[] }> = {
    berth: { add: [], del: [], addCpu: [] },
    "host-local": { add: [], del: [], addCpu: [] },
  };
  for (let i = -WARMUP; i < N; i++) {
    // Alternate which plugin goes first, so drift and noise hit both alike.
    const order = i % 2 === 0 ? PLUGINS : [...PLUGINS].reverse();
    for (const p of order) {
      const r = await addDel(p, dirs[p]);
      if (i >= 0) {
        t[p].add.push(r.add);
        t[p].del.push(r.del);
        t[p].addCpu.push(r.addCpu);
      }
    }
  }
  return t;
}

async function statefulSet() {
  const dir = freshDir("sts");
  const add: number[] = [];
  const del: number[] = [];
  let first: string | undefined;
  for (let i = -WARMUP; i < N; i++) {
    const uid = `uid-${runTag}-${i + WARMUP}-${Math.random().toString(36).slice(2, 10)}`;
    const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench-sts-0;K8S_POD_UID=${uid}`;
    const r = await addDel("berth", dir, args);
    first ??= r.address;
    if (r.address !== first) {
      fail(`StatefulSet pod default/bench-sts-0 came back on ${r.address}, not ${first} (iteration ${i + WARMUP})`);
    }
    if (i >= 0) {
      add.push(r.add);
      del.push(r.del);
    }
  }
  return { add, del, address: first! };
}

/** Problems found in concurrent rounds: reported loudly at the end (exit 1), after the figures. */
const failures: string[] = [];

/** C ADDs spawned at once against a fresh dataDir; wall time from first spawn to last exit. Undefined if any failed. */
async function burst(p: Plugin, prime: boolean, label: string) {
  const dir = freshDir(`conc-${p === "berth" ? "berth" : "hl"}`);
  if (prime) await addDel(p, dir); // database / directory already there, as on a node that has run a pod
  const conf = CONF[p](dir);
  const runs: Promise<Timed>[] = [];
  for (let i = 0; i < C; i++) runs.push(timed(BIN[p], [], cniEnv("ADD", newId(p)), conf));
  const rs = await Promise.all(runs);
  rmSync(dir, { recursive: true, force: true });
  const failed = rs.filter((r) => r.status !== 0);
  if (failed.length) {
    const f = failed[0];
    failures.push(`${label}: ${p}: ${failed.length} of ${C} concurrent ADDs failed; first: exit ${f.status}, stdout ${f.stdout.trim()}`);
    console.error(`!! ${failures[failures.length - 1]}`);
    return undefined;
  }
  const addrs = rs.map((r) => addressOf(p, r));
  const distinct = new Set(addrs).size;
  if (distinct !== C) {
    failures.push(`${label}: ${p}: ${C} concurrent ADDs returned only ${distinct} distinct addresses`);
    console.error(`!! ${failures[failures.length - 1]}`);
    return undefined;
  }
  let first = rs[0].t0;
  let last = rs[0].t1;
  for (const r of rs) {
    if (r.t0 < first) first = r.t0;
    if (r.t1 > last) last = r.t1;
  }
  return { wall: Number(last - first) / 1e6, each: rs.map((r) => r.ms) };
}

/** ROUNDS rounds of one burst per plugin, alternating which goes first. Failed rounds are left out of the figures. */
async function concurrent(prime: boolean) {
  const wall: Record<Plugin, number[]> = { berth: [], "host-local": [] };
  const each: Record<Plugin, number[]> = { berth: [], "host-local": [] };
  const failedRounds: Record<Plugin, number> = { berth: 0, "host-local": 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? PLUGINS : [...PLUGINS].reverse();
    for (const p of order) {
      const r = await burst(p, prime, `${prime ? "primed" : "fresh"} dataDir, round ${round + 1}`);
      if (!r) {
        failedRounds[p]++;
        continue;
      }
      wall[p].push(r.wall);
      each[p].push(...r.each);
    }
  }
  return { wall, each, failedRounds };
}

/** Bare process start-up: /bin/true (what spawning and reaping costs here), berth's `version`, both plugins' CNI VERSION, a bun hello-world. */
async function startup(hello: string | undefined) {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  const verEnv = { ...env, CNI_COMMAND: "VERSION" };
  const cases: [string, () => Promise<Timed>][] = [
    ["/bin/true (spawn cost)", () => timed("/bin/true", [], env)],
    ["berth version", () => timed(BERTH, ["version"], env)],
    ["berth CNI VERSION", () => timed(BERTH, [], verEnv, "{}")],
    ["host-local CNI VERSION", () => timed(HOST_LOCAL, [], verEnv, "{}")],
  ];
  if (hello) cases.push(["bun hello-world", () => timed(hello, [], env)]);
  const t = new Map<string, number[]>(cases.map(([k]) => [k, []]));
  for (let i = -WARMUP; i < N; i++) {
    for (const [k, run] of i % 2 === 0 ? cases : [...cases].reverse()) {
      const r = await run();
      if (r.status !== 0) fail(`${k} failed`, r);
      if (i >= 0) t.get(k)!.push(r.ms);
    }
  }
  return t;
}

/** A trivial bun-compiled binary built the same way as dist/berth, for bun's own start-up cost. */
function buildHello(): string | undefined {
  if (!existsSync(BUN)) return undefined;
  const dir = freshDir("hello");
  writeFileSync(join(dir, "h.ts"), "console.log(1)\n");
  // The flags of package.json's build script, so the floor is measured with what dist/berth is built with.
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: { build: string } };
  const flags = pkg.scripts.build.split(/\s+/).filter((w) => w.startsWith("--") && w !== "--outfile");
  const r = spawnSync(BUN, ["build", ...flags, join(dir, "h.ts"), "--outfile", join(dir, "h")], { encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(`note: could not build the bun hello-world (${r.stderr.trim()}); skipping it\n`);
    return undefined;
  }
  return join(dir, "h");
}

// ---------------------------------------------------------------- report

async function main() {
  if (!existsSync(HOST_LOCAL)) {
    throw new BenchFailure(`${HOST_LOCAL} is missing: apt-get install -y containernetworking-plugins (or set HOST_LOCAL)`);
  }
  const hello = buildHello();
  const started = new Date();
  const rev = spawnSync("git", ["-C", ROOT, "describe", "--always", "--dirty", "--exclude", "*"], { encoding: "utf8" }).stdout?.trim() || "unknown";
  console.log(`berth bench: ${BERTH} (source ${rev}) vs ${HOST_LOCAL}`);
  console.log(`  N=${N} sequential iterations (+${WARMUP} warm-up), ${ROUNDS} rounds x ${C} concurrent ADDs, dataDirs under ${DATA_ROOT}`);
  const loadBefore = loadavg()[0];
  console.log(`  ${cpus().length} CPUs, ${cpus()[0]?.model ?? "?"}, node ${process.version}, load average (1 min) ${loadBefore.toFixed(2)}\n`);

  const seq = await sequential();
  const sts = await statefulSet();
  const conc = await concurrent(false);
  const concWarm = await concurrent(true);
  const boot = await startup(hello);
  const loadAfter = loadavg()[0];

  const d = {
    berth: { add: dist(seq.berth.add), del: dist(seq.berth.del) },
    "host-local": { add: dist(seq["host-local"].add), del: dist(seq["host-local"].del) },
  };
  const stsAdd = dist(sts.add);
  const stsDel = dist(sts.del);
  const wallMed = (c: typeof conc, p: Plugin) => r2(median(c.wall[p]));
  const bootD = Object.fromEntries([...boot].map(([k, v]) => [k, dist(v)]));
  const ratio = (a: number, b: number) => r2(a / b);

  console.log(`Sequential ADD then DEL, fresh container ID each, ms (N=${N}, interleaved):`);
  table(
    ["", "ADD p50", "ADD p99", "DEL p50", "DEL p99"],
    [
      ["berth", d.berth.add.p50, d.berth.add.p99, d.berth.del.p50, d.berth.del.p99],
      ["host-local", d["host-local"].add.p50, d["host-local"].add.p99, d["host-local"].del.p50, d["host-local"].del.p99],
      [
        "berth/host-local (x)",
        ratio(d.berth.add.p50, d["host-local"].add.p50),
        ratio(d.berth.add.p99, d["host-local"].add.p99),
        ratio(d.berth.del.p50, d["host-local"].del.p50),
        ratio(d.berth.del.p99, d["host-local"].del.p99),
      ],
    ],
  );
  const cpuMean = (xs: number[]) => r2(xs.reduce((a, b) => a + b, 0) / xs.length);
  const addCpu = { berth: cpuMean(seq.berth.addCpu), hostLocal: cpuMean(seq["host-local"].addCpu) };
  console.log(
    `  CPU per ADD (the plugin process, user+system, mean of ${N}): berth ${addCpu.berth.toFixed(2)} ms, host-local ${addCpu.hostLocal.toFixed(2)} ms (${ratio(addCpu.berth, addCpu.hostLocal).toFixed(2)}x)`,
  );
  console.log(`\nStatefulSet pod default/bench-sts-0 coming back (berth only, new container ID + pod UID each), ms (N=${N}):`);
  table(["", "ADD p50", "ADD p99", "DEL p50", "DEL p99"], [["berth sticky", stsAdd.p50, stsAdd.p99, stsDel.p50, stsDel.p99]]);
  console.log(`  same address every time: ${sts.address} (checked)`);

  for (const [label, c] of [
    ["fresh dataDir", conc],
    ["primed dataDir (one ADD+DEL first)", concWarm],
  ] as const) {
    console.log(`\nConcurrent: ${C} ADDs spawned at once, ${label}, wall ms first spawn -> last exit (${ROUNDS} rounds, interleaved):`);
    table(
      ["", "median", "min", "max", "per-ADD p50", "per-ADD p99"],
      PLUGINS.map((p) => [
        p,
        wallMed(c, p),
        c.wall[p].length ? Math.min(...c.wall[p]) : NaN,
        c.wall[p].length ? Math.max(...c.wall[p]) : NaN,
        percentile(c.each[p], 50),
        percentile(c.each[p], 99),
      ]),
    );
    const bad = PLUGINS.filter((p) => c.failedRounds[p] > 0).map((p) => `${p} ${c.failedRounds[p]} of ${ROUNDS}`);
    console.log(
      `  berth/host-local wall (median): ${ratio(wallMed(c, "berth"), wallMed(c, "host-local")).toFixed(2)}x; ` +
        (bad.length
          ? `FAILED ROUNDS (left out of the figures above): ${bad.join(", ")}`
          : `every ADD of every round succeeded with distinct addresses (checked)`),
    );
  }

  console.log(`\nStart-up baselines, ms (N=${N}, interleaved):`);
  table(
    ["", "p50", "p99"],
    [...boot.keys()].map((k) => [k, bootD[k].p50, bootD[k].p99]),
  );
  const bv = bootD["berth version"].p50;
  const hw = bootD["bun hello-world"]?.p50;
  const tr = bootD["/bin/true (spawn cost)"].p50;
  const f = (x: number) => x.toFixed(2);
  console.log(
    `  berth ADD p50 ${f(d.berth.add.p50)} ms ~ ${f(tr)} spawn/exec/reap (/bin/true)` +
      (hw !== undefined
        ? ` + ${f(hw - tr)} bun runtime start-up (hello-world - true) + ${f(bv - hw)} berth module loading (version - hello-world)`
        : ` + ${f(bv - tr)} bun start-up and module loading (version - true)`) +
      ` + ${f(d.berth.add.p50 - bv)} CNI work (ADD - version: stdin, config, SQLite open, transaction, fsync, close)`,
  );
  console.log(
    `  host-local ADD p50 ${f(d["host-local"].add.p50)} ms ~ ${f(tr)} spawn/exec/reap + ${f(bootD["host-local CNI VERSION"].p50 - tr)} Go start-up + ${f(d["host-local"].add.p50 - bootD["host-local CNI VERSION"].p50)} work`,
  );

  // The aims of berth 0.4 (issue 9): sequential ADD p50 <= 2.0x host-local's, 100 at once <= 2.5x its wall.
  const SEQ_AIM = 2.0;
  const CONC_AIM = 2.5;
  const targets = {
    seqAddP50Ratio: ratio(d.berth.add.p50, d["host-local"].add.p50),
    seqAddP50Target: SEQ_AIM,
    seqAddMet: d.berth.add.p50 <= SEQ_AIM * d["host-local"].add.p50,
    // What bun costs before berth's own code runs, in the same unit: a compiled console.log(1) against host-local's ADD.
    bunHelloRatio: bootD["bun hello-world"] ? ratio(bootD["bun hello-world"].p50, d["host-local"].add.p50) : undefined,
    concWallRatio: ratio(wallMed(conc, "berth"), wallMed(conc, "host-local")),
    concWallTarget: CONC_AIM,
    concMet: wallMed(conc, "berth") <= CONC_AIM * wallMed(conc, "host-local"),
  };
  console.log(
    `\nLoad average (1 min): ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after ("after" includes the bench's own 100-process bursts; "before" shows what else was running).`,
  );
  console.log(`\nTargets (reported, not asserted):`);
  console.log(
    `  sequential ADD p50 <= ${SEQ_AIM}x host-local: ${targets.seqAddP50Ratio.toFixed(2)}x -> ${targets.seqAddMet ? "met" : "MISSED"}` +
      (targets.bunHelloRatio !== undefined ? ` (bun's own start-up, a compiled console.log(1), is ${targets.bunHelloRatio.toFixed(2)}x host-local's ADD)` : ""),
  );
  console.log(`  ${C} concurrent ADDs <= ${CONC_AIM}x host-local's wall: ${targets.concWallRatio.toFixed(2)}x -> ${targets.concMet ? "met" : "MISSED"}`);

  // Cluster mode (scripts/bench-cluster.ts): starts the test control plane, or says why it cannot and is skipped.
  // BENCH_ONLY=local skips the cluster and controller sections (no control plane needed).
  const localOnly = process.env.BENCH_ONLY === "local";
  const cluster = localOnly
    ? { ok: true, json: { skipped: "BENCH_ONLY=local" } as Record<string, unknown> }
    : await (await import("./bench-cluster.ts")).clusterSection({
        addP50: d.berth.add.p50,
        addCpuMs: addCpu.berth,
        concWallMs: conc.wall.berth.length ? wallMed(conc, "berth") : undefined, // undefined: every round failed
        concC: C,
      });

  const json = {
    date: started.toISOString(),
    rev,
    n: N,
    rounds: ROUNDS,
    concurrency: C,
    dataRoot: DATA_ROOT,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    loadavg1: { before: r2(loadBefore), after: r2(loadAfter) },
    sequential: {
      berth: d.berth,
      hostLocal: d["host-local"],
      ratio: {
        addP50: targets.seqAddP50Ratio,
        addP99: ratio(d.berth.add.p99, d["host-local"].add.p99),
        delP50: ratio(d.berth.del.p50, d["host-local"].del.p50),
        delP99: ratio(d.berth.del.p99, d["host-local"].del.p99),
      },
    },
    addCpuMs: addCpu,
    statefulSet: { add: stsAdd, del: stsDel, address: sts.address, sameAddress: true },
    concurrent: Object.fromEntries(
      (
        [
          ["fresh", conc],
          ["primed", concWarm],
        ] as const
      ).map(([k, c]) => [
        k,
        {
          berth: { wallMedian: wallMed(c, "berth"), walls: c.wall.berth.map(r2), perAdd: dist(c.each.berth) },
          hostLocal: { wallMedian: wallMed(c, "host-local"), walls: c.wall["host-local"].map(r2), perAdd: dist(c.each["host-local"]) },
          ratio: ratio(wallMed(c, "berth"), wallMed(c, "host-local")),
          failedRounds: { berth: c.failedRounds.berth, hostLocal: c.failedRounds["host-local"] },
        },
      ]),
    ),
    startup: bootD,
    targets,
    failures,
    cluster: cluster.json,
  };
  console.log(`\nBENCH_JSON ${JSON.stringify(json)}`);
  if (!cluster.ok) {
    console.error(`\nbench FAILED: the cluster section ${"skipped" in (cluster.json as object) ? "was skipped" : "failed or had failures"} (see above)`);
    process.exitCode = 1;
  }
  if (failures.length) {
    console.error(`\nbench FAILED: ${failures.length} concurrent round(s) had failed ADDs or duplicate addresses:\n  ${failures.join("\n  ")}`);
    process.exitCode = 1;
  }

  // The controller (scripts/bench-controller.ts): release latencies, full scans, CPU and RSS with 5,000 bound addresses,
  // and a big cluster (BENCH_CTL_SCALE pods and claims): scan times and peak RSS against the Deployment's limit.
  if (!localOnly) {
    const { controllerSection } = await import("./bench-controller.ts");
    if (!(await controllerSection()).ok) process.exitCode = 1;
  }
}

main().then(
  () => cleanup(),
  (err) => {
    cleanup();
    console.error(`\nbench FAILED: ${err instanceof BenchFailure ? err.message : ((err as Error).stack ?? err)}`);
    process.exit(1);
  },
);
