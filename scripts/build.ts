/**
 * `npm run build`: compiles dist/berth, one self-contained executable, with
 * bun. Its entries are plugin/entry-bun.ts and every lazily loaded module of
 * plugin/support/lazy-entries.ts (the one list of them).
 *
 * - --no-compile-autoload-dotenv, --no-compile-autoload-bunfig: the binary runs
 *   as root in whatever directory the runtime starts it; it must never read a
 *   .env or bunfig.toml (a preload) from there.
 * - --compile-jit-policy=10: a plugin process lives ~50 ms, too short to repay
 *   JIT compilation; the controller restores the normal policy at start.
 *
 *   node --import tsx scripts/build.ts [--outfile PATH]
 */
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LAZY_ENTRIES } from "../plugin/support/lazy-entries.ts";

/** bun build's flags for dist/berth; the bench builds its bun hello-world with them too (scripts/bench/local/startup.ts). */
export const COMPILE_FLAGS = ["--compile", "--minify", "--bytecode", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--compile-jit-policy=10"];

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(import.meta.dirname, "..");
  const i = process.argv.indexOf("--outfile");
  const outfile = i > 0 ? process.argv[i + 1] : "dist/berth";
  const entries = ["plugin/entry-bun.ts", ...Object.values(LAZY_ENTRIES).map((p) => `plugin/${p}`)];
  const r = spawnSync(join(root, "node_modules/.bin/bun"), ["build", ...COMPILE_FLAGS, ...entries, "--outfile", outfile], { cwd: root, stdio: "inherit" });
  process.exitCode = r.status ?? 1;
}
