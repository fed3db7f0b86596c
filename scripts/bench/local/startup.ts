/**
 * The local section's start-up baselines: what spawning a process costs here
 * (/bin/true), berth's `version` and CNI VERSION, host-local's CNI VERSION,
 * and a bun-compiled hello-world built the way dist/berth is, for bun's own
 * start-up cost.
 */
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BERTH } from "../../../test/support/berth.ts";
import { COMPILE_FLAGS } from "../../build.ts";
import { fail, type Timed, timed } from "../lib.ts";
import { BUN, freshDir, HOST_LOCAL, N, WARMUP } from "./plugins.ts";

/** Bare process start-up, interleaved: each case's times, ms, by its label. */
export async function startup(hello: string | undefined): Promise<Map<string, number[]>> {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  const verEnv = { ...env, CNI_COMMAND: "VERSION" };
  const cases: [string, () => Promise<Timed>][] = [
    ["/bin/true (spawn cost)", () => timed("/bin/true", [], env)],
    ["berth version", () => timed(BERTH, ["version"], env)],
    ["berth CNI VERSION", () => timed(BERTH, [], verEnv, "{}")],
    ["host-local CNI VERSION", () => timed(HOST_LOCAL, [], verEnv, "{}")],
  ];
  if (hello) cases.push(["bun hello-world", () => timed(hello, [], env)]);
  const t = new Map<string, number[]>(cases.map(([k]) => [k, []]));
  for (let i = -WARMUP; i < N; i++) {
    for (const [k, run] of i % 2 === 0 ? cases : [...cases].reverse()) {
      const r = await run();
      if (r.status !== 0) fail(`${k} failed`, r);
      if (i >= 0) t.get(k)!.push(r.ms);
    }
  }
  return t;
}

/** A trivial bun-compiled binary built the same way as dist/berth, for bun's own start-up cost; undefined without bun. */
export function buildHello(): string | undefined {
  if (!existsSync(BUN)) return undefined;
  const dir = freshDir("hello");
  writeFileSync(join(dir, "h.ts"), "console.log(1)\n");
  // dist/berth's own flags (scripts/build.ts), so the floor is measured with what it is built with.
  const r = spawnSync(BUN, ["build", ...COMPILE_FLAGS, join(dir, "h.ts"), "--outfile", join(dir, "h")], { encoding: "utf8" });
  if (r.status !== 0) {
    process.stderr.write(`note: could not build the bun hello-world (${r.stderr.trim()}); skipping it\n`);
    return undefined;
  }
  return join(dir, "h");
}
