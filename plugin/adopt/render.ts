/** Adopt's plan as a table (the default) or one JSON document (`-o json`: `{"plan": [...], "pools": [...]}`). */
import { renderTable } from "../support/table.ts";
import type { PlanItem } from "./plan.ts";
import type { PoolNote } from "./pool-notes.ts";

export interface AdoptReport {
  plan: PlanItem[];
  pools: PoolNote[];
}

export function renderJson(report: AdoptReport): string {
  return `${JSON.stringify(report)}\n`;
}

export function renderReport(report: AdoptReport, dryRun: boolean): string {
  const out: string[] = [];
  if (report.plan.length === 0) out.push("nothing to adopt: the source records no address in use\n");
  else {
    out.push(
      renderTable(
        ["ADDRESS", "POOL", "POD", "INTERFACE", "ACTION", "REASON"],
        report.plan.map((i) => [i.address, i.pool ?? "-", i.pod, i.interface || "-", i.action, i.reason]),
      ),
    );
    const n = (a: string) => report.plan.filter((i) => i.action === a).length;
    out.push(`\n${dryRun ? "would adopt" : "adopted"} ${n("adopt")}, skipped ${n("skip")}, conflicts ${n("conflict")}\n`);
  }
  if (report.pools.length) {
    out.push("\n");
    out.push(
      renderTable(
        ["POOL", "SUBNET", "STATUS", "IPS", "EXCLUDE", "ADDRESSES", "REASON"],
        report.pools.map((p) => [
          p.name || "-",
          p.subnet || "-",
          p.status,
          (p.ips ?? []).join(",") || "-",
          (p.excludeIPs ?? []).join(",") || "-",
          String(p.addresses),
          p.reason,
        ]),
      ),
    );
  }
  return out.join("");
}
