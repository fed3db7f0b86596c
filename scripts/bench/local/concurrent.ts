/**
 * The local section's concurrent phase: C ADDs spawned at once against a
 * fresh dataDir (or one primed by an ADD+DEL), berth and host-local
 * alternating which goes first, ROUNDS rounds. A round with a failed ADD or
 * duplicate addresses is left out of the figures and listed in `failures`.
 */
import { rmSync } from "node:fs";
import { span, type Timed, timed } from "../lib.ts";
import { addDel, addressOf, BIN, C, CONF, cniEnv, freshDir, newId, PLUGINS, type Plugin, ROUNDS } from "./plugins.ts";

/** Problems found in concurrent rounds: reported loudly at the end (exit 1), after the figures. */
export const failures: string[] = [];

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
  return { wall: span(rs), each: rs.map((r) => r.ms) };
}

/** The walls and per-ADD times of the rounds where every ADD succeeded, per plugin, and how many rounds failed. */
export interface ConcurrentTimes {
  wall: Record<Plugin, number[]>;
  each: Record<Plugin, number[]>;
  failedRounds: Record<Plugin, number>;
}

/** ROUNDS rounds of one burst per plugin, alternating which goes first. Failed rounds are left out of the figures. */
export async function concurrent(prime: boolean): Promise<ConcurrentTimes> {
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
