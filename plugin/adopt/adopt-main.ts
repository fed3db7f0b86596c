/**
 * Entry of `berth adopt` (an entry point of its own in the binary:
 * support/lazy-entries.ts): takes another IPAM's addresses in use over as
 * berth's own claims and endpoints, so switching a network to berth re-IPs
 * no running pod. Reads the source (read-*.ts), plans (plan.ts), writes
 * (apply.ts) unless --dry-run, prints the plan (render.ts).
 * Exit codes (an interface): 0 no conflict (dry run, or all adopted or
 * already berth's); 1 a conflict was found (the rest is adopted); 2 adopt
 * could not run (API error, a pool it needs is missing, usage).
 */
import { createAdoptClient } from "../kube/adopt-client.ts";
import { resolveKubeconfig } from "../kube/kubeconfig-path.ts";
import type { AdoptArgs } from "./adopt-options.ts";
import { applyPlan } from "./apply.ts";
import { makePlan } from "./plan.ts";
import { readSpiderpool } from "./read-spiderpool.ts";
import { readWhereabouts } from "./read-whereabouts.ts";
import { renderJson, renderReport } from "./render.ts";

export { adoptOptions } from "./adopt-options.ts";

export interface AdoptIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
}

/** Runs adopt; returns the exit code. */
export async function adoptMain(args: AdoptArgs, io: AdoptIo): Promise<number> {
  try {
    const api = createAdoptClient(resolveKubeconfig(args.kubeconfig, io.env), 30_000);
    const read = args.from === "whereabouts" ? await readWhereabouts(api) : await readSpiderpool(api);
    const plan = await makePlan(api, read, { source: args.from, defaultInterface: args.interface });
    if (plan.missing.length && !args.dryRun) {
      // Nothing is written: every address needs its pool first, or berth could hand it out again.
      const named = plan.pools.filter((p) => p.status === "needed");
      io.out(
        args.output === "json" ? renderJson({ plan: strip(plan.plan), pools: plan.pools }) : renderReport({ plan: strip(plan.plan), pools: plan.pools }, true),
      );
      io.err(
        `berth adopt: no SpiderIPPool holds ${plan.missing.join(", ")}: a pool is needed for ${plan.missing.length === 1 ? "it" : "them"} (${named.map((p) => p.name || p.subnet || "-").join(", ")}); create ${named.length === 1 ? "it" : "them"} and run adopt again. Nothing was written.\n`,
      );
      return 2;
    }
    const items = args.dryRun ? strip(plan.plan) : await applyPlan(api, plan, args.from);
    const report = { plan: items, pools: plan.pools };
    io.out(args.output === "json" ? renderJson(report) : renderReport(report, args.dryRun));
    return items.some((i) => i.action === "conflict") ? 1 : 0;
  } catch (err) {
    io.err(`berth adopt: ${(err as Error).message}\n`);
    return 2;
  }
}

function strip<T extends { write?: unknown }>(items: T[]): Omit<T, "write">[] {
  return items.map(({ write, ...rest }) => rest);
}
