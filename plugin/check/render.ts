/** The report as a table (the default) or one JSON document (`-o json`: `{"problems": [...], "pools": [...]}`). */
import { renderTable } from "../support/table.ts";
import type { CheckReport } from "./problem.ts";

export function renderJson(report: CheckReport): string {
  return `${JSON.stringify(report)}\n`;
}

export function renderReport(report: CheckReport): string {
  const out: string[] = [];
  if (report.problems.length === 0) out.push("no problems found\n");
  else {
    const rows = report.problems.map((p) => [
      p.kind,
      p.address ?? "",
      p.pool ?? "",
      (p.pods ?? []).join(","),
      p.repair === undefined ? p.detail : `${p.detail} [${p.repaired ? "repaired" : "not repaired"}: ${p.repair}]`,
    ]);
    out.push(renderTable(["KIND", "ADDRESS", "POOL", "PODS", "DETAIL"], rows));
    out.push("\nWhat to do:\n");
    for (const p of report.problems) out.push(`  ${p.kind} ${p.address ?? p.pool ?? ""}: ${p.action}\n`);
  }
  if (report.pools.length) {
    out.push("\n");
    out.push(
      renderTable(
        ["POOL", "TOTAL", "CLAIMED", "FREE", "RETAINED", "EXCLUDED"],
        report.pools.map((p) => [
          p.name,
          String(p.total),
          String(p.claimed),
          String(p.free),
          String(p.retained),
          p.excluded === undefined ? "-" : String(p.excluded),
        ]),
      ),
    );
  }
  return out.join("");
}
