/**
 * Controller figures for `npm run bench`: `berth controller` as a real process
 * (the controller's own ServiceAccount, kube-system/berth-controller) against
 * the test control plane of scripts/testenv.sh. scripts/bench.ts calls
 * controllerSection() at its end; alone:
 *
 *   npm run build && node --import tsx scripts/bench-controller.ts
 *
 * Phases:
 *   1. pod deletion without DEL → release: N plain pods ADDed by dist/berth,
 *      each force-deleted in turn; time until its claim is gone (watch-driven)
 *   2. scale-down without DEL → release: a StatefulSet of 10 whose members 5-9
 *      lost their node (force-deleted, recreated unbound by the StatefulSet
 *      controller, claims kept while in range); time from `kubectl scale
 *      --replicas 5` to all five claims gone; R rounds. Plus one round where
 *      the members are still bound and Terminating (grace 3 s, no DEL): held
 *      past their grace period (their DEL has not run); time from their pod
 *      objects' end to the release
 *   3. 5,000 bound addresses (BENCH_CTL_BOUND): 2,500 plain pods + a
 *      StatefulSet of 2,500 stuck at ordinal 0 (OrderedReady, never Ready),
 *      a claim and an endpoint for each, created as admin; a fresh controller
 *      is started on them: time to the first full scan, full-scan durations
 *      (berth_reconcile_last_duration_seconds), CPU time and RSS from
 *      /proc/<pid>/stat and status, and the API server's GET counts while the
 *      controller re-judges every claim live when its ADD timeout passes; then
 *      a failover: that replica stopped, a fresh one started on the now old
 *      claims (first scan, the live re-judging wave, CPU, peak RSS).
 *   4. a big cluster (BENCH_CTL_SCALE, default 10,000; 50,000 is the figure
 *      BENCHMARKS.md states): that many pods (Pending: no scheduler, no
 *      kubelet), each with a claim and an endpoint, in namespace
 *      berth-bench-scale and pool bench-ctl-scale (10.203.0.0/16); a fresh
 *      controller (--list-page-size 500) scans them: the first full scan's
 *      time, steady scans, LIST requests per scan, and the controller's peak
 *      RSS (VmHWM) against the Deployment's 256 MiB memory limit (the section
 *      fails above it, and if anything is released).
 *
 * The controller acts cluster-wide: the section refuses to run while another
 * controller holds the lease kube-system/berth-controller. Everything it makes
 * lives in namespace berth-bench-ctl and pool bench-ctl (10.202.0.0/16); it is
 * removed at the end (and at the start, if a killed run left some), every
 * controller it started is stopped, and no pool keeps the controller's
 * finalizer.
 *
 * Environment: BENCH_CTL_N (pods in phase 1, default 20), BENCH_CTL_ROUNDS
 * (phase 2, default 5), BENCH_CTL_BOUND (phase 3, default 5000),
 * BENCH_CTL_SCALE (phase 4, default 10000), BENCH_CTL_PAGE (its page size,
 * default 500), BENCH_CTL_PAR (parallel API
 * requests while filling, default 32), BENCH_CTL_PHASES (default 1234),
 * BERTH_BIN. `BENCH_CTL_SCALE=50000 npm run bench` shows 50,000 claims and
 * 50,000 pods (filling them takes several minutes on a small machine).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BERTH_API_VERSION,
  BERTH_GROUP,
  CLAIMS_PATH as CLAIMS,
  CLAIM_KIND,
  ENDPOINT_KIND,
  ENDPOINT_PLURAL,
  POOLS_PATH as POOLS,
  POOL_FINALIZER as FINALIZER,
  POOL_GROUP,
  POOL_KIND,
  POOL_LABEL,
  POOL_VERSION,
} from "../plugin/kube/crd.ts";
import { AdminClient, path } from "../test/harness/admin-client.ts";
import { runCni } from "../test/harness/cni-runner.ts";
import { logged } from "../test/harness/log-lines.ts";
import { type ControlPlane, NODES, up } from "../test/harness/control-plane.ts";
import { ControllerProcess, runningControllers as running } from "../test/harness/controller-process.ts";
import { waitFor } from "../test/harness/batch.ts";
import { inBatches, intEnv, percentile, r3, sleep } from "./bench-lib.ts";

const ROOT = resolve(import.meta.dirname, "..");
const BERTH_SOURCE = process.env.BERTH_BIN ?? join(ROOT, "dist/berth");
const N = intEnv("BENCH_CTL_N", 20);
const ROUNDS = intEnv("BENCH_CTL_ROUNDS", 5);
const BOUND = intEnv("BENCH_CTL_BOUND", 5000);
const PAR = intEnv("BENCH_CTL_PAR", 32);
const SCALE = intEnv("BENCH_CTL_SCALE", 10_000);
const PHASES = process.env.BENCH_CTL_PHASES || "1234";
/** Phase 4's --list-page-size. */
const PAGE = intEnv("BENCH_CTL_PAGE", 500);
/** The Deployment's memory limit (fixtures/deploy/controller.yaml). */
const MEMORY_LIMIT_MIB = 256;
/** BENCH_CTL_KEEP_SCALE=1: phase 4's objects stay after the run, and a run that finds them complete skips the fill. */
const KEEP_SCALE = process.env.BENCH_CTL_KEEP_SCALE === "1";
/** spec.addDeadlineSeconds of phase 3's claims: as a plugin with timeoutSeconds 20 writes it (20 + 10 + 5 s). */
const ADD_DEADLINE = 35;

const NS = "berth-bench-ctl";
const POOL = "bench-ctl";
const SCALE_NS = "berth-bench-scale";
const SCALE_POOL = "bench-ctl-scale";
const SCALE_BASE = (10 << 24) | (203 << 16); // 10.203.0.0/16
const SUBNET_BASE = (10 << 24) | (202 << 16); // 10.202.0.0/16
const STS = "bench-ctl-sts";
const BIG_STS = "bench-ctl-big";
const ANNOTATIONS = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [POOL] }) };
const pods = path("pods", { ns: NS });
const endpoints = path(ENDPOINT_PLURAL, { ns: NS });
const statefulsets = path("statefulsets", { ns: NS });

const say = (s: string) => console.log(`  ${s}`);
const dist = (xs: number[]) =>
  xs.length ? { p50: r3(percentile(xs, 50)), p90: r3(percentile(xs, 90)), max: r3(Math.max(...xs)), min: r3(Math.min(...xs)), n: xs.length } : { n: 0 };

const until = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 20) => waitFor(what, fn, { timeoutMs, everyMs });

const addr = (i: number, base = SUBNET_BASE) => [24, 16, 8, 0].map((s) => ((base + i) >>> s) & 255).join(".");

// ---------------------------------------------------------------- the admin's API

/** The test harness's admin client, plus what this bench reads. */
class Api extends AdminClient {
  constructor() {
    super({ maxSockets: PAR, timeoutMs: 60_000, retryServerErrors: true });
  }

  async claimExists(address: string): Promise<boolean> {
    return (await this.request("GET", `${CLAIMS}/v4-${address.replace(/\./g, "-")}`)).status === 200;
  }

  async poolClaims(pool = POOL): Promise<{ metadata: { name: string }; spec: { address: string; podName: string } }[]> {
    const l = await this.list(CLAIMS, { labelSelector: `${POOL_LABEL}=${pool}` });
    return l.filter((c: { spec: { pool: string } }) => c.spec.pool === pool);
  }

  /**
   * Reads of single objects per resource, from the API server's own metrics (any response code). A 1.20
   * API server counts a GET of a namespaced custom resource (a BerthEndpoint) as verb LIST, scope
   * namespace; those are counted too (nothing lists endpoints per namespace while this is measured).
   */
  async getCounts(): Promise<Record<string, number>> {
    const text = (await this.must<string>("GET", "/metrics")) as string;
    const out: Record<string, number> = {};
    for (const line of text.split("\n")) {
      if (!line.startsWith("apiserver_request_total{")) continue;
      const single = line.includes('verb="GET"') && line.includes('scope="resource"');
      const crGet = line.includes('resource="berthendpoints"') && line.includes('verb="LIST"') && line.includes('scope="namespace"');
      if (!single && !crGet) continue;
      const res = /resource="([^"]*)"/.exec(line)?.[1] ?? "";
      out[res] = (out[res] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return out;
  }

  /** The controller lease's live holder, if any. */
  async leaseHolder(): Promise<string | undefined> {
    const r = await this.request("GET", path("leases", { ns: "kube-system", name: "berth-controller" }));
    if (r.status !== 200) return undefined;
    const s = r.body.spec ?? {};
    if (!s.holderIdentity) return undefined;
    return Date.now() <= Date.parse(s.renewTime ?? 0) + (s.leaseDurationSeconds ?? 8) * 1000 ? s.holderIdentity : undefined;
  }

  async stripFinalizers(): Promise<void> {
    for (const p of await this.list<{ metadata: { name: string; finalizers?: string[] } }>(POOLS)) {
      const i = p.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
      if (i < 0) continue;
      await this.patch(
        `${POOLS}/${p.metadata.name}`,
        [
          { op: "test", path: `/metadata/finalizers/${i}`, value: FINALIZER },
          { op: "remove", path: `/metadata/finalizers/${i}` },
        ],
        "json",
        [404, 422],
      );
    }
  }
}

// ---------------------------------------------------------------- the controller process

interface ProcStats {
  cpuSeconds: number;
  rssMiB: number;
  hwmMiB: number;
  /** Anonymous memory alone: RSS without the binary's file-backed pages (which the kernel can drop and re-read). */
  anonMiB: number;
}

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

function procStats(pid: number): ProcStats {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return {
    cpuSeconds: (Number(f[11]) + Number(f[12])) / CLK_TCK,
    rssMiB: r3(kb("VmRSS") / 1024),
    hwmMiB: r3(kb("VmHWM") / 1024),
    anonMiB: r3(kb("RssAnon") / 1024),
  };
}

/**
 * Puts a process in a memory cgroup limited as the Deployment limits the
 * controller (cgroup v1's memory controller, or v2), so the bench shows it
 * living under the limit, not only an RSS figure beside it: the kernel
 * reclaims the binary's file-backed pages under pressure and kills the
 * process if anonymous memory alone does not fit. Undefined without either.
 */
function memoryCgroup(limitMiB: number) {
  const v1 = existsSync("/sys/fs/cgroup/memory");
  if (!v1 && !existsSync("/sys/fs/cgroup/cgroup.controllers")) return undefined;
  const dir = join(v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup", `berth-bench-${process.pid}`);
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, v1 ? "memory.limit_in_bytes" : "memory.max"), String(limitMiB * 1024 * 1024));
  } catch (err) {
    say(`(no memory cgroup: ${(err as Error).message})`);
    return undefined;
  }
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8").trim() : "");
  return {
    dir,
    /** Peak usage (page cache of the cgroup included), and OOM kills seen. */
    stats(): { peakMiB: number; oomKills: number } {
      const peak = Number(read("memory.max_usage_in_bytes") || read("memory.peak") || Number.NaN);
      const oom = /oom_kill (\d+)/.exec(read("memory.oom_control") || read("memory.events"))?.[1];
      return { peakMiB: r3(peak / 1024 / 1024), oomKills: Number(oom ?? 0) };
    },
    remove(): void {
      try {
        rmdirSync(dir);
      } catch {
        // still has a process (a killed one not yet reaped): left for the next boot
      }
    },
  };
}

/**
 * Samples a process's RSS every 100 ms; `stop` tells when the highest sample
 * was taken, relative to the process's own log lines (what it was doing).
 */
function sampleRss(pid: number) {
  const samples: [ms: number, mib: number][] = [];
  let anonPeak = 0;
  const timer = setInterval(() => {
    try {
      const st = procStats(pid);
      samples.push([Date.now(), st.rssMiB]);
      anonPeak = Math.max(anonPeak, st.anonMiB);
    } catch {
      // the process is gone
    }
  }, 100);
  return {
    stop(log: string): { rssMiB: number; anonPeakMiB: number; afterLine: string; secondsAfterIt: number } | undefined {
      clearInterval(timer);
      const top = samples.reduce<[number, number] | undefined>((a, b) => (!a || b[1] > a[1] ? b : a), undefined);
      if (!top) return undefined;
      let before: { ms: number; msg: string } = { ms: samples[0][0], msg: "(start)" };
      for (const line of log.split("\n")) {
        try {
          const e = JSON.parse(line) as { time?: string; msg?: string };
          const ms = Date.parse(e.time ?? "");
          if (ms <= top[0] && ms >= before.ms) before = { ms, msg: e.msg ?? "" };
        } catch {
          // not a log line
        }
      }
      if (process.env.BENCH_CTL_RSS_FILE) writeFileSync(process.env.BENCH_CTL_RSS_FILE, samples.map(([t, m]) => `${t} ${m}`).join("\n"));
      return { rssMiB: top[1], anonPeakMiB: anonPeak, afterLine: before.msg, secondsAfterIt: r3((top[0] - before.ms) / 1000) };
    },
  };
}

/** A `berth controller` process (test/harness/controller-process.ts) whose stop must end in exit 0. */
class Controller extends ControllerProcess {
  override async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const e = await super.stop(15_000);
    if (e.code !== 0) throw new Error(`controller ${this.identity} exited ${e.code} on SIGTERM:\n${this.log().slice(-2000)}`);
    return e;
  }
}

const startController = (ctx: { bin: string; plane: ControlPlane }, identity: string, resyncSeconds: number, args: string[] = [], cgroup?: string) =>
  Controller.start({
    bin: ctx.bin,
    kubeconfig: ctx.plane.controllerKubeconfig,
    identity,
    resyncSeconds,
    pollMs: 20,
    httpTimeoutMs: 120_000,
    args,
    cgroup,
  });

// ---------------------------------------------------------------- set-up, the plugin, clean-up

interface Ctx {
  api: Api;
  plane: ControlPlane;
  bin: string;
  dirs: Record<string, string>;
}

let seq = 0;
const container = () => `bench-ctl-${process.pid}-${++seq}`;

function cni(ctx: Ctx, command: "ADD" | "DEL", id: string, pod: { name: string; uid: string; node: string }) {
  return runCni(ctx.bin, {
    command,
    containerId: id,
    netns: "/var/run/netns/none",
    ifname: "eth0",
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
    stdin: {
      cniVersion: "1.0.0",
      name: "bench-ctl",
      type: "berth",
      ipam: { type: "berth", kubeconfig: ctx.plane.pluginKubeconfig, nodeName: pod.node, dataDir: ctx.dirs[pod.node] },
    },
  });
}

async function add(ctx: Ctx, pod: { name: string; uid: string; node: string }): Promise<string> {
  const r = await cni(ctx, "ADD", container(), pod);
  if (r.status !== 0) throw new Error(`ADD of ${NS}/${pod.name} failed: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout).ips[0].address.split("/")[0];
}

async function createPod(api: Api, name: string, node: string): Promise<string> {
  const body = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, annotations: ANNOTATIONS },
    spec: { nodeName: node, automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
  };
  return (await api.create(pods, body)).metadata.uid;
}

const forceDelete = (api: Api, name: string) => api.delete(`${pods}/${name}`, { gracePeriodSeconds: 0 });

async function removeAll(api: Api): Promise<void> {
  const ns = await api.get(path("namespaces", { name: NS }));
  if (ns) {
    for (const s of [STS, BIG_STS]) await api.delete(`${statefulsets}/${s}`, { propagationPolicy: "Orphan" });
    await inBatches(await api.list(pods), PAR, (p) => forceDelete(api, p.metadata.name));
  }
  await inBatches(await api.poolClaims(), PAR, (c) => api.delete(`${CLAIMS}/${c.metadata.name}`));
  await api.delete(`${POOLS}/${POOL}`);
  if (ns) {
    await api.must("DELETE", path("namespaces", { name: NS }), undefined, [404, 409]);
    await until(`namespace ${NS} to go`, async () => !(await api.get(path("namespaces", { name: NS }))), 180_000, 250);
  }
}

/** Removes phase 4's namespace (its pods are unscheduled: deleted at once), claims and pool. */
async function removeScale(api: Api): Promise<void> {
  const claims = await api.poolClaims(SCALE_POOL);
  await inBatches(claims, PAR, (c) => api.delete(`${CLAIMS}/${c.metadata.name}`));
  await api.delete(`${POOLS}/${SCALE_POOL}`);
  if (await api.get(path("namespaces", { name: SCALE_NS }))) {
    await api.must("DELETE", path("namespaces", { name: SCALE_NS }), undefined, [404, 409]);
    await until(`namespace ${SCALE_NS} to go`, async () => !(await api.get(path("namespaces", { name: SCALE_NS }))), 600_000, 500);
  }
}

// ---------------------------------------------------------------- phases

/** Phase 1: plain pods force-deleted one at a time, no DEL: ms until the controller has deleted the claim. */
async function podDeletion(ctx: Ctx): Promise<number[]> {
  const names = Array.from({ length: N }, (_, i) => `gone-${i}`);
  const held = await inBatches(names, 8, async (name, i) => {
    const node = NODES[i % 3];
    const uid = await createPod(ctx.api, name, node);
    return { name, address: await add(ctx, { name, uid, node }) };
  });
  await sleep(1000);
  const ms: number[] = [];
  for (const h of held) {
    const t0 = performance.now();
    await forceDelete(ctx.api, h.name);
    await until(`claim of ${h.address} released`, async () => !(await ctx.api.claimExists(h.address)), 30_000, 5);
    ms.push(performance.now() - t0);
  }
  return ms;
}

/** Scheduler + kubelet for a StatefulSet member: wait for a pod with a new UID, bind it, ADD. */
async function startMember(ctx: Ctx, name: string, node: string, notUid?: string): Promise<{ uid: string; address: string }> {
  const pod = await until(
    `${name}`,
    async () => {
      const r = await ctx.api.request("GET", `${pods}/${name}`);
      return r.status === 200 && !r.body.metadata.deletionTimestamp && r.body.metadata.uid !== notUid ? r.body : undefined;
    },
    30_000,
    20,
  );
  if (!pod.spec.nodeName) {
    await ctx.api.create(`${pods}/${name}/binding`, {
      apiVersion: "v1",
      kind: "Binding",
      metadata: { name, namespace: NS },
      target: { apiVersion: "v1", kind: "Node", name: node },
    });
  }
  return { uid: pod.metadata.uid, address: await add(ctx, { name, uid: pod.metadata.uid, node }) };
}

/** Phase 2: scale 10 → 5 with members 5-9 gone with their node (recreated unbound); ms until all five claims are released. */
async function scaleDown(ctx: Ctx): Promise<{ all: number[]; each: number[]; terminating: { afterGone: number; heldPastDeadlineMs: number } }> {
  const scale = (n: number) => ctx.api.patch(`${statefulsets}/${STS}`, { spec: { replicas: n } });
  await ctx.api.create(statefulsets, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: STS, namespace: NS },
    spec: {
      serviceName: STS,
      replicas: 10,
      podManagementPolicy: "Parallel",
      selector: { matchLabels: { app: STS } },
      template: {
        metadata: { labels: { app: STS }, annotations: ANNOTATIONS },
        spec: { terminationGracePeriodSeconds: 3, automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      },
    },
  });
  const members = new Map<string, { uid: string; address: string }>();
  const up = async (ordinals: number[]) => {
    await inBatches(ordinals, 8, async (i) => members.set(`${STS}-${i}`, await startMember(ctx, `${STS}-${i}`, NODES[i % 3])));
  };
  await up([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const beyond = [5, 6, 7, 8, 9].map((i) => `${STS}-${i}`);
  const all: number[] = [];
  const each: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Their node dies: the pods are removed, the StatefulSet controller recreates them (unbound, nowhere to run).
    await Promise.all(beyond.map((n) => forceDelete(ctx.api, n)));
    await Promise.all(
      beyond.map((n) =>
        until(
          `${n} recreated`,
          async () => {
            const r = await ctx.api.request("GET", `${pods}/${n}`);
            return r.status === 200 && r.body.metadata.uid !== members.get(n)!.uid;
          },
          30_000,
          20,
        ),
      ),
    );
    await sleep(500);
    const t0 = performance.now();
    await scale(5);
    await Promise.all(
      beyond.map(async (n) => {
        await until(`claim of ${n} released`, async () => !(await ctx.api.claimExists(members.get(n)!.address)), 60_000, 5);
        each.push(performance.now() - t0);
      }),
    );
    all.push(performance.now() - t0);
    await scale(10);
    await up([5, 6, 7, 8, 9]);
  }
  // Once more with the members still bound, Terminating (grace 3 s) and no DEL: held while their pod objects exist
  // (their DEL has not run), whatever the grace period; released once the objects are gone (the kubelet's last step).
  await scale(5);
  let deadline = 0;
  await Promise.all(
    beyond.map(async (n) => {
      const p = await until(
        `${n} terminating`,
        async () => {
          const r = await ctx.api.request("GET", `${pods}/${n}`);
          return r.status === 200 && r.body.metadata.deletionTimestamp ? r.body : undefined;
        },
        30_000,
        20,
      );
      deadline = Math.max(deadline, Date.parse(p.metadata.deletionTimestamp) + 5000);
    }),
  );
  await sleep(Math.max(0, deadline + 3000 - Date.now()));
  for (const n of beyond) {
    if (!(await ctx.api.claimExists(members.get(n)!.address))) throw new Error(`${n}'s claim was released while its pod was still Terminating`);
  }
  const t0 = performance.now();
  await Promise.all(beyond.map((n) => forceDelete(ctx.api, n)));
  await Promise.all(beyond.map((n) => until(`claim of ${n} released`, async () => !(await ctx.api.claimExists(members.get(n)!.address)), 60_000, 5)));
  const afterGone = performance.now() - t0;
  const heldPastDeadlineMs = Date.now() - deadline;
  return { all, each, terminating: { afterGone, heldPastDeadlineMs } };
}

/** Phase 3: BOUND claims + endpoints (half plain pods, half members of a StatefulSet stuck at ordinal 0), then a fresh controller. */
async function bound(ctx: Ctx) {
  const { api } = ctx;
  const half = Math.floor(BOUND / 2);
  const t0 = performance.now();
  await api.create(statefulsets, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: BIG_STS, namespace: NS },
    spec: {
      serviceName: BIG_STS,
      replicas: BOUND - half,
      selector: { matchLabels: { app: BIG_STS } },
      // OrderedReady: ordinal 0 never becomes Ready (no kubelet), so the StatefulSet controller creates no other pod.
      template: {
        metadata: { labels: { app: BIG_STS } },
        spec: { nodeName: "node1", automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      },
    },
  });
  const entries = Array.from({ length: BOUND }, (_, i) => i);
  const base = 256; // 10.202.1.0 on: clear of phases 1 and 2 (which take free addresses at random, but few)
  const taken = new Set((await api.poolClaims()).map((c) => c.spec.address));
  const addresses: string[] = [];
  for (let i = base; addresses.length < BOUND; i++) if (!taken.has(addr(i)) && (i & 255) !== 0 && (i & 255) !== 255) addresses.push(addr(i));
  await inBatches(entries, PAR, async (i) => {
    const plain = i < half;
    const name = plain ? `bound-${i}` : `${BIG_STS}-${i - half}`;
    const node = NODES[i % 3];
    const uid = plain ? await createPod(api, name, node) : `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`;
    const address = addresses[i];
    await api.create(CLAIMS, {
      apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
      kind: CLAIM_KIND,
      metadata: { name: `v4-${address.replace(/\./g, "-")}`, labels: { [POOL_LABEL]: POOL } },
      spec: {
        address,
        ipVersion: 4,
        pool: POOL,
        podNamespace: NS,
        podName: name,
        podUID: uid,
        containerID: `fill-${i}`,
        interface: "eth0",
        node,
        claimedAt: new Date().toISOString(),
        addDeadlineSeconds: ADD_DEADLINE,
        ...(plain ? {} : { statefulSet: BIG_STS }),
      },
    });
    await api.create(endpoints, {
      apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
      kind: ENDPOINT_KIND,
      metadata: { name, namespace: NS },
      spec: {
        podUID: uid,
        node,
        containerID: `fill-${i}`,
        ownerControllerType: plain ? "None" : "StatefulSet",
        ...(plain ? {} : { ownerControllerName: BIG_STS }),
        ips: [{ interface: "eth0", ipv4: `${address}/16`, ipv4Pool: POOL }],
      },
    });
  });
  const fillSeconds = (performance.now() - t0) / 1000;
  const claimedAt = Date.now();
  say(`${BOUND} claims + endpoints (${half} plain pods, ${BOUND - half} StatefulSet members) created in ${fillSeconds.toFixed(1)} s`);

  // A fresh controller on them. --resync-seconds 15: full scans keep coming while we watch.
  const getsBefore = await api.getCounts();
  const started = performance.now();
  const ctl = await startController(ctx, "bench-ctl-big", 15);
  await until("the first full scan", async () => (await ctl.scans()) >= 1, 120_000, 50);
  const firstScanWall = (performance.now() - started) / 1000;
  const firstScan = (await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!;
  const atFirstScan = procStats(ctl.pid);
  // The claims' ADD deadline (ADD_DEADLINE s after their creation, by the API server's clock) passes: the
  // controller re-judges every claim on the live API server.
  const timeoutAt = claimedAt + ADD_DEADLINE * 1000 + 2000;
  await sleep(Math.max(0, timeoutAt - Date.now()) + 1000);
  const getsAt = await api.getCounts();
  // Wait for that wave to settle: no GET growth for 3 s.
  let last = getsAt;
  for (;;) {
    await sleep(3000);
    const now = await api.getCounts();
    const grew = ["berthendpoints", "pods", "statefulsets"].some((r) => (now[r] ?? 0) > (last[r] ?? 0) + 20);
    last = now;
    if (!grew) break;
  }
  const afterWave = procStats(ctl.pid);
  const gets = Object.fromEntries(
    ["berthendpoints", "pods", "statefulsets", "berthipclaims", "spiderippools"].map((r) => [r, (last[r] ?? 0) - (getsBefore[r] ?? 0)]),
  );
  // Steady state: three more full scans.
  const scanDurations: number[] = [];
  const cpuPerScan: number[] = [];
  let prev = procStats(ctl.pid);
  let scans = await ctl.scans();
  for (let i = 0; i < 3; i++) {
    await until("another full scan", async () => (await ctl.scans()) > scans, 60_000, 50);
    scans = await ctl.scans();
    scanDurations.push((await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!);
    const now = procStats(ctl.pid);
    cpuPerScan.push(r3(now.cpuSeconds - prev.cpuSeconds));
    prev = now;
  }
  const steady = procStats(ctl.pid);
  const m = await ctl.metrics();
  let released = logged(ctl.log(), "address released").length;

  // A failover: a fresh replica on claims older than the ADD timeout (their watch replay re-judges every one live at once).
  await ctl.stop();
  const g0 = await api.getCounts();
  const t1 = performance.now();
  const next = await startController(ctx, "bench-ctl-big-2", 15);
  await until("the new replica's first full scan", async () => (await next.scans()) >= 1, 120_000, 50);
  const failoverFirstScan = (performance.now() - t1) / 1000;
  let prevGets = await api.getCounts();
  for (;;) {
    await sleep(2000);
    const now = await api.getCounts();
    const grew = ["berthendpoints", "pods", "statefulsets"].some((r) => (now[r] ?? 0) > (prevGets[r] ?? 0) + 20);
    prevGets = now;
    if (!grew) break;
  }
  const settled = (performance.now() - t1) / 1000 - 2;
  const fo = procStats(next.pid);
  released += logged(next.log(), "address released").length;
  const failover = {
    firstScanAfterStartSeconds: r3(failoverFirstScan),
    scanSeconds: r3((await next.metrics()).get("berth_reconcile_last_duration_seconds")!),
    liveWaveSettledAfterSeconds: r3(settled),
    cpuSeconds: r3(fo.cpuSeconds),
    peakRssMiB: fo.hwmMiB,
    gets: Object.fromEntries(["berthendpoints", "pods", "statefulsets"].map((r) => [r, (prevGets[r] ?? 0) - (g0[r] ?? 0)])),
  };
  return {
    ctl: next,
    result: {
      failover,
      bound: BOUND,
      fillSeconds: r3(fillSeconds),
      firstScan: { wallFromStartSeconds: r3(firstScanWall), scanSeconds: r3(firstScan), cpuSeconds: r3(atFirstScan.cpuSeconds), rssMiB: atFirstScan.rssMiB },
      addTimeoutWave: { cpuSeconds: r3(afterWave.cpuSeconds - atFirstScan.cpuSeconds), gets, rssMiB: afterWave.rssMiB },
      steady: {
        scanSeconds: scanDurations.map(r3),
        cpuSecondsPerResync15s: cpuPerScan,
        rssMiB: steady.rssMiB,
        peakRssMiB: steady.hwmMiB,
        totalCpuSeconds: r3(steady.cpuSeconds),
      },
      claimsMetric: m.get("berth_claims"),
      released,
    },
  };
}

/** Phase 4's objects: SCALE Pending pods, each with a claim and an endpoint. */
async function fillScale(api: Api): Promise<void> {
  await api.create(path("namespaces"), { apiVersion: "v1", kind: "Namespace", metadata: { name: SCALE_NS } });
  await api.create(POOLS, { apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, metadata: { name: SCALE_POOL }, spec: { subnet: "10.203.0.0/16" } });
  const scalePods = path("pods", { ns: SCALE_NS });
  const scaleEndpoints = path(ENDPOINT_PLURAL, { ns: SCALE_NS });
  const t0 = performance.now();
  let done = 0;
  await inBatches(
    Array.from({ length: SCALE }, (_, i) => i),
    PAR,
    async (i) => {
      const name = `scale-${i}`;
      const node = NODES[i % 3];
      // No nodeName: no scheduler runs, so it stays Pending (and a deletion removes it at once).
      const pod = await api.create(scalePods, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: SCALE_NS, annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [SCALE_POOL] }) } },
        spec: { automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      });
      const uid = pod.metadata.uid;
      const address = addr(i + 1, SCALE_BASE);
      await api.create(CLAIMS, {
        apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
        kind: CLAIM_KIND,
        metadata: { name: `v4-${address.replace(/\./g, "-")}`, labels: { [POOL_LABEL]: SCALE_POOL } },
        spec: {
          address,
          ipVersion: 4,
          pool: SCALE_POOL,
          podNamespace: SCALE_NS,
          podName: name,
          podUID: uid,
          containerID: `scale-${i}`,
          interface: "eth0",
          node,
          claimedAt: new Date().toISOString(),
          addDeadlineSeconds: 45,
        },
      });
      await api.create(scaleEndpoints, {
        apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
        kind: ENDPOINT_KIND,
        metadata: { name, namespace: SCALE_NS },
        spec: {
          podUID: uid,
          node,
          containerID: `scale-${i}`,
          ownerControllerType: "None",
          ips: [{ interface: "eth0", ipv4: `${address}/16`, ipv4Pool: SCALE_POOL }],
        },
      });
      if (++done % 10_000 === 0) say(`  ${done} of ${SCALE} pods + claims + endpoints (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    },
  );
}

/**
 * Phase 4: SCALE pods (Pending), each with a claim and an endpoint, then a fresh controller scanning them in
 * pages: scan times, LIST requests, peak RSS against the Deployment's limit. Nothing may be released.
 */
async function bigCluster(ctx: Ctx) {
  const { api } = ctx;
  const t0 = performance.now();
  if (KEEP_SCALE && (await api.poolClaims(SCALE_POOL)).length === SCALE) {
    say(`${SCALE} pods + claims + endpoints kept from an earlier run (BENCH_CTL_KEEP_SCALE=1): no fill`);
  } else await fillScale(api);
  const fillSeconds = (performance.now() - t0) / 1000;
  say(`${SCALE} pods (Pending) + ${SCALE} claims + ${SCALE} endpoints ready in ${fillSeconds.toFixed(1)} s`);

  const started = performance.now();
  // As the Deployment's limit would: the controller starts in a cgroup limited to it (the engine sizes its
  // heap by the limit it sees at start), and must live under it, not only measure under it.
  const cgroup = process.env.BENCH_CTL_MEMCG === "0" ? undefined : memoryCgroup(MEMORY_LIMIT_MIB);
  const ctl = await startController(ctx, "bench-ctl-scale", 30, ["--list-page-size", String(PAGE), "--log-level", "debug"], cgroup?.dir);
  const rss = sampleRss(ctl.pid);
  await until("the first full scan", async () => (await ctl.scans()) >= 1, 600_000, 200);
  const firstScanWall = (performance.now() - started) / 1000;
  const m1 = await ctl.metrics();
  const firstScan = m1.get("berth_reconcile_last_duration_seconds")!;
  const requests = (m: Map<string, number>) =>
    Object.fromEntries(["claims", "pods", "endpoints", "statefulsets", "nodes"].map((k) => [k, m.get(`berth_list_requests_total{kind="${k}"}`) ?? 0]));
  const firstRequests = requests(m1);
  const atFirst = procStats(ctl.pid);
  const scanDurations: number[] = [];
  let scans = await ctl.scans();
  for (let i = 0; i < 2; i++) {
    await until("another full scan", async () => (await ctl.scans()) > scans, 600_000, 200);
    scans = await ctl.scans();
    scanDurations.push(r3((await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!));
  }
  const m = await ctl.metrics();
  const failures = ["claims", "pods", "endpoints", "statefulsets", "nodes", "pools"].filter((k) => (m.get(`berth_list_failures_total{kind="${k}"}`) ?? 0) > 0);
  const end = procStats(ctl.pid);
  const peak = rss.stop(ctl.log());
  const limited = cgroup?.stats();
  const released = [...ctl.log().matchAll(/address released/g)].length;
  await ctl.stop();
  cgroup?.remove();
  return {
    pods: SCALE,
    claims: SCALE,
    endpoints: SCALE,
    fillSeconds: r3(fillSeconds),
    firstScan: { wallFromStartSeconds: r3(firstScanWall), scanSeconds: r3(firstScan), listRequests: firstRequests, rssMiB: atFirst.rssMiB },
    steadyScanSeconds: scanDurations,
    claimsMetric: m.get("berth_claims"),
    listFailures: failures,
    cpuSeconds: r3(end.cpuSeconds),
    rssMiB: end.rssMiB,
    peakRssMiB: end.hwmMiB,
    peakDuring: peak,
    /** In a memory cgroup limited to MEMORY_LIMIT_MIB: its peak usage and OOM kills (undefined: not run in one). */
    cgroup: limited,
    memoryLimitMiB: MEMORY_LIMIT_MIB,
    underLimit: end.hwmMiB < MEMORY_LIMIT_MIB,
    released,
  };
}

// ---------------------------------------------------------------- the section

export interface ControllerOutcome {
  ok: boolean;
  json: Record<string, unknown>;
}

export async function controllerSection(): Promise<ControllerOutcome> {
  console.log(`\n==== Controller ====`);
  let plane: ControlPlane;
  try {
    plane = up().plane;
  } catch (err) {
    console.error(`\n!! controller section SKIPPED: ${(err as Error).message}`);
    return { ok: false, json: { skipped: (err as Error).message } };
  }
  const api = new Api();
  const holder = await api.leaseHolder();
  if (holder) {
    const why = `another berth controller (identity ${holder}) holds lease kube-system/berth-controller; the controller bench needs the control plane to itself`;
    console.error(`\n!! controller section SKIPPED: ${why}`);
    api.close();
    return { ok: false, json: { skipped: why } };
  }
  const temp = mkdtempSync(join(tmpdir(), "berth-bench-ctl-"));
  const bin = join(temp, "berth");
  copyFileSync(BERTH_SOURCE, bin); // a rebuild during the bench must not swap the binary under us
  const dirs = Object.fromEntries(NODES.map((n) => [n, mkdtempSync(join(temp, `${n}-`))]));
  const ctx: Ctx = { api, plane, bin, dirs };
  const json: Record<string, unknown> = { date: new Date().toISOString(), loadavg1Before: r3(loadavg()[0]) };
  let ok = true;
  try {
    await api.stripFinalizers();
    await removeAll(api);
    if (!KEEP_SCALE) await removeScale(api);
    await api.create(path("namespaces"), { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    await api.create(POOLS, { apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, metadata: { name: POOL }, spec: { subnet: "10.202.0.0/16" } });

    if (PHASES.includes("1") || PHASES.includes("2")) {
      const ctl = await startController(ctx, "bench-ctl", 60);
      await until("leadership and a first scan", async () => (await ctl.scans()) >= 1, 30_000, 50);
      if (PHASES.includes("1")) {
        const ms = await podDeletion(ctx);
        json.podDeletedToReleasedMs = dist(ms);
        say(
          `pod deleted (no DEL) → claim released, ${N} pods one at a time: p50 ${percentile(ms, 50).toFixed(0)} ms, p90 ${percentile(ms, 90).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`,
        );
      }
      if (PHASES.includes("2")) {
        const s = await scaleDown(ctx);
        json.scaleDownToReleasedMs = {
          allFive: dist(s.all),
          each: dist(s.each),
          terminatingGrace3s: { heldPastDeadlinePlusMarginMs: s.terminating.heldPastDeadlineMs, releasedAfterPodGoneMs: Math.round(s.terminating.afterGone) },
        };
        say(
          `kubectl scale 10 → 5 (members 5-9 gone with their node, no DEL) → all five claims released, ${ROUNDS} rounds: p50 ${percentile(s.all, 50).toFixed(0)} ms, max ${Math.max(...s.all).toFixed(0)} ms (each claim p50 ${percentile(s.each, 50).toFixed(0)} ms)`,
        );
        say(
          `  members still bound and Terminating (grace 3 s, no DEL): held ${s.terminating.heldPastDeadlineMs} ms past deletionTimestamp + 5 s, released ${s.terminating.afterGone.toFixed(0)} ms after their pod objects were gone`,
        );
      }
      await ctl.stop();
    }
    if (PHASES.includes("3")) {
      const { ctl, result } = await bound(ctx);
      json.bound = result;
      say(
        `first full scan ${result.firstScan.scanSeconds} s (leader + lists + judging ${BOUND} claims), ${result.firstScan.wallFromStartSeconds} s after start; CPU ${result.firstScan.cpuSeconds} s, RSS ${result.firstScan.rssMiB} MiB`,
      );
      say(
        `ADD-deadline wave (every claim re-judged live ${ADD_DEADLINE} s after it was made): CPU ${result.addTimeoutWave.cpuSeconds} s, single-object GETs ${JSON.stringify(result.addTimeoutWave.gets)}`,
      );
      say(
        `steady full scans ${result.steady.scanSeconds.join(", ")} s; CPU per 15 s resync ${result.steady.cpuSecondsPerResync15s.join(", ")} s; RSS ${result.steady.rssMiB} MiB (peak ${result.steady.peakRssMiB} MiB); released ${result.released}`,
      );
      const f = result.failover;
      say(
        `failover (fresh replica, claims past the ADD timeout): first scan ${f.firstScanAfterStartSeconds} s after start; live re-judging wave done ~${f.liveWaveSettledAfterSeconds} s after start; CPU ${f.cpuSeconds} s, peak RSS ${f.peakRssMiB} MiB, GETs ${JSON.stringify(f.gets)}`,
      );
      if (result.released !== 0) {
        ok = false;
        console.error(`!! the controller released ${result.released} of the ${BOUND} bound addresses`);
      }
      // Clean-up while the controller runs: claims first, then the pool (its finalizer comes off once empty).
      const t = performance.now();
      const claims = await api.poolClaims();
      await inBatches(claims, PAR, (c) => api.delete(`${CLAIMS}/${c.metadata.name}`));
      await api.delete(`${POOLS}/${POOL}`);
      await until("pool bench-ctl to go (finalizer removed by the controller)", async () => !(await api.get(`${POOLS}/${POOL}`)), 60_000, 100);
      say(`deleted ${claims.length} claims and the pool in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      await ctl.stop();
    }
    if (PHASES.includes("4")) {
      const r = await bigCluster(ctx);
      json.bigCluster = r;
      say(
        `big cluster, ${r.pods} pods and ${r.claims} claims: first full scan ${r.firstScan.scanSeconds} s (${r.firstScan.wallFromStartSeconds} s after start; LIST requests ${JSON.stringify(r.firstScan.listRequests)}), steady scans ${r.steadyScanSeconds.join(", ")} s`,
      );
      say(
        `  controller RSS ${r.rssMiB} MiB, peak (VmHWM) ${r.peakRssMiB} MiB: ${r.underLimit ? "under" : "OVER"} the Deployment's ${MEMORY_LIMIT_MIB} MiB limit; CPU ${r.cpuSeconds} s; released ${r.released}`,
      );
      say(
        r.peakDuring
          ? `  highest RSS sample ${r.peakDuring.rssMiB} MiB, ${r.peakDuring.secondsAfterIt} s after the log line "${r.peakDuring.afterLine}"; highest anonymous RSS ${r.peakDuring.anonPeakMiB} MiB`
          : "  (no RSS samples)",
      );
      say(
        r.cgroup
          ? `  in a memory cgroup limited to ${MEMORY_LIMIT_MIB} MiB: peak usage ${r.cgroup.peakMiB} MiB, OOM kills ${r.cgroup.oomKills}`
          : "  not run in a memory cgroup",
      );
      if (!r.underLimit || r.cgroup?.oomKills || r.released !== 0 || r.listFailures.length || (r.claimsMetric ?? 0) < SCALE) {
        ok = false;
        console.error(
          `!! big cluster: peak RSS ${r.peakRssMiB} MiB (limit ${MEMORY_LIMIT_MIB}), released ${r.released}, failed lists ${r.listFailures.join(",") || "none"}, berth_claims ${r.claimsMetric}`,
        );
      }
      const t = performance.now();
      await api.stripFinalizers();
      if (!KEEP_SCALE) {
        await removeScale(api);
        say(`  removed in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      }
    }
    json.loadavg1After = r3(loadavg()[0]);
  } catch (err) {
    ok = false;
    json.error = (err as Error).message;
    console.error(`\n!! controller section FAILED: ${(err as Error).stack}`);
    for (const c of running) console.error(`controller ${c.identity} log tail:\n${c.log().slice(-3000)}`);
  } finally {
    for (const c of [...running]) await c.stop().catch((e) => console.error(`!! ${(e as Error).message}`));
    try {
      await api.stripFinalizers();
      await removeAll(api);
      if (!KEEP_SCALE) await removeScale(api);
    } catch (err) {
      ok = false;
      console.error(
        `!! controller bench cleanup failed: ${(err as Error).message}; run node --import tsx scripts/bench-controller.ts again, it cleans up first`,
      );
    }
    api.close();
    rmSync(temp, { recursive: true, force: true });
  }
  console.log(`\nCONTROLLER_JSON ${JSON.stringify(json)}`);
  return { ok, json };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!existsSync(BERTH_SOURCE)) {
    console.error(`${BERTH_SOURCE} is missing: npm run build`);
    process.exit(1);
  }
  controllerSection().then((o) => process.exit(o.ok ? 0 : 1));
}
