/**
 * Phase 1 of the controller section: N plain pods ADDed by dist/berth, each
 * force-deleted in turn with no DEL; the time until the controller (watch-
 * driven) has deleted its claim.
 */
import { NODES } from "../../../test/support/control-plane.ts";
import { inBatches, sleep } from "../lib.ts";
import { N, until } from "./config.ts";
import { add, type Ctx, createPod, forceDelete } from "./plugin.ts";

/** Phase 1: plain pods force-deleted one at a time, no DEL: ms until the controller has deleted the claim. */
export async function podDeletion(ctx: Ctx): Promise<number[]> {
  const names = Array.from({ length: N }, (_, i) => `gone-${i}`);
  const held = await inBatches(names, 8, async (name, i) => {
    const node = NODES[i % 3];
    const uid = await createPod(ctx.api, name, node);
    return { name, address: await add(ctx, { name, uid, node }) };
  });
  await sleep(1000);
  const ms: number[] = [];
  for (const h of held) {
    const t0 = performance.now();
    await forceDelete(ctx.api, h.name);
    await until(`claim of ${h.address} released`, async () => !(await ctx.api.claimExists(h.address)), 30_000, 5);
    ms.push(performance.now() - t0);
  }
  return ms;
}
