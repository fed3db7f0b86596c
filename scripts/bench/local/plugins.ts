/**
 * The local section's two plugins, berth and host-local, on equivalent pools,
 * each run as a whole CNI process the way a container runtime runs it; the
 * section's knobs (see scripts/bench.ts) and its temporary dataDirs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BERTH, netconf, ROOT } from "../../../test/support/berth.ts";
import { cniEnv as cniCallEnv } from "../../../test/support/spawn-cni.ts";
import { childCpuMs, fail, intEnv, type Timed, timed } from "../lib.ts";

export const N = intEnv("BENCH_N", 200);
export const ROUNDS = intEnv("BENCH_ROUNDS", 5);
export const C = intEnv("BENCH_C", 100);
export const WARMUP = 5;
export const DATA_ROOT = process.env.BENCH_DATA_ROOT ?? tmpdir();
export const HOST_LOCAL = process.env.HOST_LOCAL ?? "/usr/lib/cni/host-local";
export const BUN = join(ROOT, "node_modules/.bin/bun");
const NETWORK = "bench";
// Equivalent pools: 10.6.1.1-10.6.16.254 (4094 addresses) in 10.6.0.0/16, gateway outside the range.
const SUBNET = "10.6.0.0/16";
const RANGE_START = "10.6.1.1";
const RANGE_END = "10.6.16.254";
const GATEWAY = "10.6.0.1";

export type Plugin = "berth" | "host-local";
export const PLUGINS: Plugin[] = ["berth", "host-local"];

// ---------------------------------------------------------------- processes

export function cniEnv(command: string, containerId: string, args?: string): Record<string, string> {
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

export const BIN: Record<Plugin, string> = { berth: BERTH, "host-local": HOST_LOCAL };
export const CONF: Record<Plugin, (dir: string) => string> = { berth: berthConf, "host-local": hostLocalConf };

// ---------------------------------------------------------------- bookkeeping

const tempDirs: string[] = [];
/** A fresh temporary directory under DATA_ROOT, removed by cleanup(). */
export function freshDir(label: string): string {
  const d = mkdtempSync(join(DATA_ROOT, `berth-bench-${label}-`));
  tempDirs.push(d);
  return d;
}
/** Removes every directory freshDir() made. */
export function cleanup(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

let idSeq = 0;
export const runTag = Math.random().toString(36).slice(2, 8);
/** A container ID of this run. */
export const newId = (p: string) => `bench-${p === "berth" ? "b" : "h"}-${runTag}-${++idSeq}`;

/** The IPv4 address (without prefix) of a successful ADD, or fails the bench. */
export function addressOf(p: string, r: Timed): string {
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

/** One ADD then DEL of a fresh container; returns the timings, the ADD's CPU (the plugin process: user + system) and the address. */
export async function addDel(p: Plugin, dir: string, args?: string): Promise<{ add: number; del: number; address: string; addCpu: number }> {
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
