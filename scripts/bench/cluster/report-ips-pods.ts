/**
 * The report of the cluster section's phase 5, "IPs = pods": per size, a
 * table of berth's run (and the peer's), what each got wrong, the 409s, and
 * the ratios against the peer and the local mode's concurrent wall.
 */
import { r2, table } from "../lib.ts";
import { IPS_BACKOFF_MS, IPS_N, IPS_NODES, IPS_PER_NODE, PEER } from "./config.ts";
import type { IpsRun } from "./ips-pods.ts";
import { type IpsResult, requestsOf } from "./ips-pods-runner.ts";
import { fmt, type LocalFigures, type Report } from "./report.ts";

/** Conflicts on the object an ADD allocates with: berth's claim creates, the peer's IPPool updates (answered 409). */
const conflicts = (r: IpsResult) =>
  requestsOf(r, "POST", "berthipclaims", "409") + requestsOf(r, "PUT", "ippools", "409") + requestsOf(r, "PATCH", "ippools", "409");
/** Requests to what the plugins touch (the control plane's own lease renewals included: a few per second). */
const TOUCHED = /^\S+ (berthipclaims|berthendpoints|spiderippools|pods|statefulsets|ippools|overlappingrangeipreservations|leases)(\/\S+)? /;
const requestsTotal = (r: IpsResult) =>
  Object.entries(r.requests)
    .filter(([k]) => TOUCHED.test(k))
    .reduce((n, [, v]) => n + v, 0);
const ipsJson = (r: IpsResult) => ({
  served: r.served,
  pods: r.pods,
  allServed: r.allServed,
  wallSeconds: r2(r.wallMs / 1000),
  attempts: r.attempts,
  failedAttempts: r.failedAttempts,
  failedByCode: r.failedByCode,
  failedByDeadline: r.failedByDeadline,
  delFailures: r.delFailures,
  distinctAddresses: r.distinctAddresses,
  addressProblems: r.addressProblems.length,
  addP50: r2(r.addP50),
  addP99: r2(r.addP99),
  conflicts409: conflicts(r),
  conflictsPerServed: r.served ? r2(conflicts(r) / r.served) : null,
  requests: requestsTotal(r),
  requests409: Object.fromEntries(Object.entries(r.requests).filter(([k]) => k.endsWith(" 409"))),
});

/** One size's table, and each plugin's lines under it. */
function printRun(x: IpsRun): void {
  console.log(
    `\nCluster mode, "IPs = pods": ${x.n} pods on ${IPS_NODES} nodes, a pool of exactly ${x.n} addresses, every ADD at once (at most ${IPS_PER_NODE} in flight per node), a failed ADD's sandbox DELed and a new one ADDed after ${IPS_BACKOFF_MS / 1000}-${(IPS_BACKOFF_MS * 1.5) / 1000} s, as a kubelet would:`,
  );
  const rs = [x.berth, ...(x.peer ? [x.peer] : [])];
  table(
    ["", "served", "wall s", "attempts", "failed", "by deadline", "ADD p50 ms", "ADD p99 ms", "409s/served", "requests/served"],
    rs.map((r) => [
      r.plugin,
      `${r.served}/${r.pods}`,
      r.wallMs / 1000,
      String(r.attempts),
      String(r.failedAttempts),
      String(r.failedByDeadline),
      r.addP50,
      r.addP99,
      conflicts(r) / r.served,
      requestsTotal(r) / r.served,
    ]),
  );
  for (const r of rs) {
    console.log(
      `  ${r.plugin}: ${r.allServed ? "all served" : `NOT all served (${r.served} of ${r.pods})`}; ${r.distinctAddresses} distinct addresses${r.addressProblems.length ? ` — PROBLEMS: ${r.addressProblems.slice(0, 5).join("; ")}` : r.allServed ? " (checked)" : ""}; failed ADDs by code ${JSON.stringify(r.failedByCode)}; DELs of failed sandboxes that failed: ${r.delFailures}`,
    );
    for (const [code, msg] of Object.entries(r.firstMessage)) console.log(`    first code ${code}: ${msg}`);
    console.log(`    409s: ${JSON.stringify(Object.fromEntries(Object.entries(r.requests).filter(([k]) => k.endsWith(" 409"))))}`);
  }
}

/** The default size's aims: all served, against the peer, against the local mode's concurrent wall. */
function judgeMain(x: IpsRun, local: LocalFigures, out: Report): void {
  const r = x.berth;
  const ok = r.allServed && r.failedByDeadline === 0 && r.addressProblems.length === 0;
  out.aims.push(
    `"IPs = pods" (${x.n}): all served, no attempt failed for a deadline, distinct addresses: ${r.served}/${r.pods} served, ${r.failedByDeadline} by deadline, ${r.addressProblems.length} address problem(s) -> ${ok ? "met" : "MISSED"}`,
  );
  if (local.concWallMs !== undefined) {
    const v = r.wallMs / local.concWallMs;
    console.log(`  berth's wall / the local-mode ${local.concC ?? ""}-concurrent wall of this run (${fmt(local.concWallMs)} ms): ${fmt(v)}x`);
    Object.assign(out.targets, { ipsVsLocal: r2(v), ipsVsLocalMet: v <= 3 && r.allServed });
    out.aims.push(
      `"IPs = pods" (${x.n}) wall <= 3x the local-mode ${local.concC ?? ""}-concurrent wall: ${fmt(v)}x -> ${v <= 3 && r.allServed ? "met" : "MISSED"}`,
    );
  } else {
    console.log(`  no local-mode concurrent wall to compare with (the local section did not run, or every one of its berth rounds failed)`);
  }
}

/** Phase 5: each size's table, lines, JSON and aims. */
export function reportIpsPods(ips: IpsRun[] | undefined, local: LocalFigures, out: Report): void {
  if (!ips) return;
  out.json.ipsPods = ips.map((x) => ({ n: x.n, berth: ipsJson(x.berth), peer: x.peer ? ipsJson(x.peer) : null }));
  for (const x of ips) {
    printRun(x);
    if (x.peer) {
      const v = x.berth.wallMs / x.peer.wallMs;
      console.log(
        `  berth/${PEER} wall: ${fmt(v)}x${x.berth.allServed && x.peer.allServed ? "" : " (not both served all: the wall of one that did not is the time it gave up)"}; order: ${x.order}`,
      );
      if (x.n === IPS_N) {
        Object.assign(out.targets, { ipsVsPeer: r2(v), ipsVsPeerMet: v <= 0.2 && x.berth.allServed });
        out.aims.push(`"IPs = pods" (${x.n}) wall <= 0.2x ${PEER}'s: ${fmt(v)}x -> ${v <= 0.2 && x.berth.allServed ? "met" : "MISSED"}`);
      }
    }
    if (x.n === IPS_N) judgeMain(x, local, out);
    else {
      out.aims.push(
        `"IPs = pods" (${x.n}, at most ${IPS_PER_NODE} per node): berth ${x.berth.served}/${x.n} in ${(x.berth.wallMs / 1000).toFixed(1)} s` +
          (x.peer ? `, ${PEER} ${x.peer.served}/${x.n} in ${(x.peer.wallMs / 1000).toFixed(1)} s (${fmt(x.berth.wallMs / x.peer.wallMs)}x)` : "") +
          " (reported)",
      );
    }
  }
}
