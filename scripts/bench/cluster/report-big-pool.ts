/**
 * The report of the cluster section's phase 4: the /16 pool's ADD and DEL
 * times empty and full, what failed, the fill and its removal, the LISTs and
 * a small pool's ADDs while the cluster held the fill, and the aim.
 */
import { LIST_FIRST_LIMIT } from "../../../plugin/cluster/take-free.ts";
import { dist, r2, r3, table } from "../lib.ts";
import type { bigPool } from "./big-pool.ts";
import { BIG, BIG_N, BIG_USABLE, CONC, FILL_PAR, FILL_PCT, SEQ, WARMUP } from "./config.ts";
import { failures } from "./plugin.ts";
import type { Report } from "./report.ts";

export type BigResult = Awaited<ReturnType<typeof bigPool>>;

/** The table of ADD/DEL times, empty and full. */
function printTimes(big: BigResult): void {
  const e = dist(big.empty.add);
  const f = dist(big.full.add);
  const ratio = r2(f.p50 / e.p50);
  console.log(
    `\nCluster mode, /16 pool ${BIG.name} (${BIG_USABLE} addresses, no ips: above ${LIST_FIRST_LIMIT}, so probed, never LISTed up front), ms (node1):`,
  );
  table(
    ["", "ADD p50", "ADD p99", "DEL p50", "DEL p99", "failed ADDs"],
    [
      [`empty (N=${BIG_N}, ${WARMUP} warm-up)`, e.p50, e.p99, dist(big.empty.del).p50, dist(big.empty.del).p99, "0"],
      [`${FILL_PCT}% full: first ADD after the fill`, big.full.first, big.full.first, big.full.firstDel, big.full.firstDel, big.full.firstError ? "1" : "0"],
      [
        `${FILL_PCT}% full: the next ${big.full.add.length + big.full.errors.length}`,
        f.p50,
        f.p99,
        dist(big.full.del).p50,
        dist(big.full.del).p99,
        String(big.full.errors.length),
      ],
    ],
  );
  console.log(`  full/empty ADD p50: ${Number.isNaN(ratio) ? "-" : `${ratio.toFixed(2)}x`} (steady state: the ADDs after the first)`);
}

/** What failed, the fill and its removal, the LISTs and the small pool. */
function printNotes(big: BigResult): void {
  console.log(
    `  node1's hints of ${BIG.name} predate the fill, so the first ADD after it is the one that finds out the pool is full (up to 84e1d00 by LISTing all its claims; since 0afff87 by probing)`,
  );
  if (big.full.firstError) console.log(`  first ADD after the fill FAILED: ${big.full.firstError}`);
  if (big.full.errors.length)
    console.log(`  ${big.full.errors.length} later ADD(s) FAILED${big.full.gaveUp ? " (gave up after 2 in a row)" : ""}; first: ${big.full.errors[0]}`);
  console.log(
    `  fill: ${big.fill.claims} claims in ${(big.fill.ms / 1000).toFixed(1)} s (${(big.fill.claims / (big.fill.ms / 1000)).toFixed(0)}/s, ${FILL_PAR} in parallel); emptied in ${(big.clean.ms / 1000).toFixed(1)} s; claims left ${big.clean.claimsAfter}; status.allocatedIPCount ${big.clean.allocatedBefore} before the fill, ${big.clean.allocatedAfter} after`,
  );
  console.log(
    `  LIST by label while the cluster held the fill (admin, no timeout; berth allows each request 10 s): ${BIG.name} (${big.list.items} claims) ${big.list.ms.toFixed(0)} ms, ${CONC.name} (0 claims) ${big.list.emptyPoolMs.toFixed(0)} ms`,
  );
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ") || "-";
  console.log(
    `  small pool ${SEQ.name} (no LIST: node1's hints are from phase 1) while the cluster held the fill: ADD ${list(big.small.add)} ms, DEL ${list(big.small.del)} ms (${big.small.errors.length} failed)`,
  );
  if (big.small.errors.length) console.log(`  small pool ADD FAILED: ${big.small.errors[0]}`);
}

function bigJson(big: BigResult) {
  const f = dist(big.full.add);
  const ratio = r2(f.p50 / dist(big.empty.add).p50);
  return {
    usable: BIG_USABLE,
    fillPct: FILL_PCT,
    empty: { add: dist(big.empty.add), del: dist(big.empty.del) },
    full: {
      firstAdd: r3(big.full.first),
      firstDel: r3(big.full.firstDel),
      firstError: big.full.firstError ?? null,
      add: f,
      del: dist(big.full.del),
      errors: big.full.errors.length,
    },
    ratioP50: Number.isNaN(ratio) ? null : ratio,
    fill: { claims: big.fill.claims, seconds: r2(big.fill.ms / 1000), parallel: FILL_PAR },
    clean: {
      seconds: r2(big.clean.ms / 1000),
      claimsAfter: big.clean.claimsAfter,
      goneBefore: big.clean.goneBefore,
      allocatedBefore: big.clean.allocatedBefore,
      allocatedAfter: big.clean.allocatedAfter,
    },
    listWhileFull: { items: big.list.items, ms: r2(big.list.ms), emptyPoolMs: r2(big.list.emptyPoolMs) },
    smallPoolWhileFull: { addMs: big.small.add.map(r2), delMs: big.small.del.map(r2), errors: big.small.errors.length },
  };
}

/** Phase 4: the table, the notes, its failures, JSON and aim. */
export function reportBigPool(big: BigResult | undefined, out: Report): void {
  if (!big) return;
  printTimes(big);
  printNotes(big);
  for (const err of [big.full.firstError, ...big.full.errors, ...big.small.errors]) if (err) failures.push(`/16 phase: ${err}`);
  out.json.bigPool = bigJson(big);
  const e = dist(big.empty.add);
  const ratio = r2(dist(big.full.add).p50 / e.p50);
  const failedFull = !!big.full.firstError || big.full.errors.length > 0;
  const met = ratio <= 2 && !failedFull;
  Object.assign(out.targets, { fullEmptyP50Ratio: Number.isNaN(ratio) ? null : ratio, fullEmptyTarget: 2, fullEmptyMet: met });
  out.aims.push(
    `/16 at ${FILL_PCT}% full no more than 2x slower than empty (ADD p50): ${Number.isNaN(ratio) ? "no ADD succeeded on the full pool" : `${ratio.toFixed(2)}x`}` +
      `${failedFull ? `, ${Number(!!big.full.firstError) + big.full.errors.length} ADD(s) failed` : ""} -> ${met ? "met" : "MISSED"}` +
      ` (first ADD after the fill: ${big.full.firstError ? "failed" : `${(big.full.first / e.p50).toFixed(1)}x`})`,
  );
}
