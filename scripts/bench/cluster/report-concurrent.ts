/**
 * The report of the cluster section's phase 3: the rounds' walls and per-ADD
 * times (the rounds where all succeeded, every round when some failed, the
 * peer's and the ratio), the warnings the ADDs logged, and the aims.
 */
import { NODES } from "../../../test/support/control-plane.ts";
import { dist, median, percentile, r2, table } from "../lib.ts";
import type { BerthRound, Round } from "./concurrent.ts";
import { C, PEER, ROUNDS } from "./config.ts";
import { fmt, type Report } from "./report.ts";

type Row = (string | number)[];

/** A row of walls and per-ADD times. */
const row = (label: string, walls: number[], each: number[]): Row => [
  label,
  median(walls),
  walls.length ? Math.min(...walls) : NaN,
  walls.length ? Math.max(...walls) : NaN,
  percentile(each, 50),
  percentile(each, 99),
];
/** "wall (n of C FAILED)" per round. */
const roundList = (rs: Round[]) => rs.map((r) => `${r.wall.toFixed(0)}${r.ok ? "" : ` (${r.failed} of ${C} FAILED)`}`).join(", ");

/** The peer's rounds: their rows for the table and their line under it; their JSON and aim. */
function peerPart(rounds: BerthRound[], peerRounds: Round[], out: Report): { rows: Row[]; line?: string } {
  if (!peerRounds.length) return { rows: [] };
  const okRounds = rounds.filter((r) => r.ok);
  const walls = okRounds.map((r) => r.wall);
  const each = okRounds.flatMap((r) => r.each);
  const pOk = peerRounds.filter((r) => r.ok);
  const pWalls = pOk.map((r) => r.wall);
  const pEach = pOk.flatMap((r) => r.each);
  const x = median(walls) / median(pWalls);
  out.json.peerConcurrent = {
    walls: peerRounds.map((r) => r2(r.wall)),
    okRounds: peerRounds.map((r) => r.ok),
    failedAdds: peerRounds.reduce((n, r) => n + r.failed, 0),
    wallMedian: pWalls.length ? r2(median(pWalls)) : null,
    perAdd: dist(pEach),
    ratioWallMedian: Number.isNaN(x) ? null : r2(x),
  };
  Object.assign(out.targets, { concVsPeer: Number.isNaN(x) ? null : r2(x), concVsPeerMet: x <= 0.1 });
  out.aims.push(`${C} ADDs at once from ${NODES.length} nodes, wall <= 0.1x ${PEER}'s: ${fmt(x)}x -> ${x <= 0.1 ? "met" : "MISSED"}`);
  return {
    rows: [
      row(`${PEER}, rounds where all succeeded`, pWalls, pEach),
      [`berth/${PEER} (x)`, x, NaN, NaN, percentile(each, 50) / percentile(pEach, 50), percentile(each, 99) / percentile(pEach, 99)],
    ],
    line: `  ${PEER} rounds: ${roundList(peerRounds)} ms (berth and ${PEER} alternate which goes first, round by round)`,
  };
}

/** Phase 3: the table of the rounds, the peer's line, the rounds' line, the warnings, JSON and aims. */
export function reportConcurrent(rounds: BerthRound[] | undefined, peerRounds: Round[], out: Report): void {
  if (!rounds) return;
  const okRounds = rounds.filter((r) => r.ok);
  const walls = okRounds.map((r) => r.wall);
  const each = okRounds.flatMap((r) => r.each);
  const allWalls = rounds.map((r) => r.wall);
  const allEach = rounds.flatMap((r) => r.each);
  const allWarn = rounds.flatMap((r) => r.warnings);
  const statusWarn = allWarn.filter((l) => /pool status not updated/.test(l)).length;
  const failedAdds = rounds.reduce((n, r) => n + r.failed, 0);
  const peer = peerPart(rounds, peerRounds, out);
  console.log(
    `\nCluster mode, ${C} ADDs spawned at once from ${NODES.join("/")} (own dataDir each, hints fresh), wall ms first spawn -> last exit (${ROUNDS} rounds):`,
  );
  table(
    ["", "median", "min", "max", "per-ADD p50", "per-ADD p99"],
    [
      row(`${peerRounds.length ? "berth, " : ""}rounds where all succeeded`, walls, each),
      ...(okRounds.length < rounds.length ? [row("every round, failed ADDs included", allWalls, allEach)] : []),
      ...peer.rows,
    ],
  );
  if (peer.line) console.log(peer.line);
  console.log(
    `  rounds: ${roundList(rounds)} ms; ` +
      (okRounds.length === rounds.length
        ? `all ${C} ADDs of every round succeeded with distinct addresses (checked)`
        : `${failedAdds} of ${C * ROUNDS} ADDs failed`),
  );
  console.log(
    `  warnings logged by these ADDs: ${allWarn.length} (${statusWarn} "pool status not updated")${allWarn.length ? `; first: ${allWarn[0].replace(/^\S+ /, "")}` : ""}`,
  );
  out.json.concurrent = {
    adds: C,
    nodes: NODES.length,
    walls: allWalls.map(r2),
    okRounds: rounds.map((r) => r.ok),
    failedAdds,
    wallMedian: walls.length ? r2(median(walls)) : null,
    wallMedianAll: r2(median(allWalls)),
    perAdd: dist(each),
    warnings: allWarn.length,
    poolStatusWarnings: statusWarn,
  };
  // Judged against the peer's rounds above (issue 9); here only the figure.
  Object.assign(out.targets, { concWallMedian: walls.length ? r2(median(walls)) : null });
  out.aims.push(
    `${C} concurrent ADDs, wall: ` +
      (walls.length ? `${median(walls).toFixed(0)} ms (median of ${walls.length} round(s) where all succeeded)` : "no round succeeded") +
      `${walls.length < rounds.length ? `; ${rounds.length - walls.length} round(s) had failed ADDs (${failedAdds} of ${C * ROUNDS})` : ""}`,
  );
}
