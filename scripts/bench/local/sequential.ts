/**
 * The local section's sequential phases: ADD then DEL of a fresh container,
 * berth and host-local interleaved; and a StatefulSet pod coming back (berth
 * only), which must get the same address every time.
 */
import { fail } from "../lib.ts";
import { addDel, freshDir, N, PLUGINS, type Plugin, runTag, WARMUP } from "./plugins.ts";

/** Timings of one plugin's sequential ADD+DEL pairs, ms, and the ADDs' CPU. */
export interface SequentialTimes {
  add: number[];
  del: number[];
  addCpu: number[];
}

/** N ADD+DEL pairs per plugin (after WARMUP left out), alternating which plugin goes first. */
export async function sequential(): Promise<Record<Plugin, SequentialTimes>> {
  const dirs: Record<Plugin, string> = { berth: freshDir("seq-berth"), "host-local": freshDir("seq-hl") };
  const t: Record<Plugin, SequentialTimes> = {
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

/** StatefulSet pod default/bench-sts-0 coming back with a new container ID and pod UID, N times: the address must not change. */
export async function statefulSet(): Promise<{ add: number[]; del: number[]; address: string }> {
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
