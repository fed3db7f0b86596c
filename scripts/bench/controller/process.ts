/**
 * The `berth controller` processes the controller section starts, and what
 * it reads of them from /proc: CPU time, RSS (sampled, with the log line the
 * peak came after), and a memory cgroup limited as the Deployment limits it.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ControlPlane } from "../../../test/support/control-plane.ts";
import { ControllerProcess } from "../../../test/support/controller-process.ts";
import { r3 } from "../lib.ts";
import { say } from "./config.ts";

export interface ProcStats {
  cpuSeconds: number;
  rssMiB: number;
  hwmMiB: number;
  /** Anonymous memory alone: RSS without the binary's file-backed pages (which the kernel can drop and re-read). */
  anonMiB: number;
}

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

export function procStats(pid: number): ProcStats {
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
export function memoryCgroup(limitMiB: number) {
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
export function sampleRss(pid: number) {
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

/** A `berth controller` process (test/support/controller-process.ts) whose stop must end in exit 0. */
export class Controller extends ControllerProcess {
  override async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const e = await super.stop(15_000);
    if (e.code !== 0) throw new Error(`controller ${this.identity} exited ${e.code} on SIGTERM:\n${this.log().slice(-2000)}`);
    return e;
  }
}

/** A fresh `berth controller` as kube-system/berth-controller, run from the section's copy of the binary. */
export const startController = (ctx: { bin: string; plane: ControlPlane }, identity: string, resyncSeconds: number, args: string[] = [], cgroup?: string) =>
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
