/**
 * berth 0.4.0 as a compiled binary, for the mixed-version tests: the plugin
 * and the controller of the last release, built once from its commit in this
 * repository's history and cached.
 *
 *   const old = oldBerth();       // ~/.cache/berth/berth-0.4.0-385d6d9ae77e/berth
 *
 * The first call builds it: a detached temporary worktree at the commit
 * (`git worktree add --detach`), node_modules linked to this checkout's, the
 * commit's own `npm run build` (bun build --compile), the binary copied into
 * the cache under a name keyed by the commit, the worktree removed (`git
 * worktree remove --force`) whatever happened. Later runs reuse the cached
 * binary once it answers `berth version` with 0.4.0. Any failure throws with
 * the step and its output: a test that needs the old binary fails, it is
 * never skipped.
 *
 * BERTH_OLD_BIN names a ready binary instead (no build, no cache).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
/** The commit of release 0.4.0 (the last before 0.5). */
export const OLD_COMMIT = "385d6d9ae77e2bcfc0c2877db1e2dc0b721867a7";
export const OLD_VERSION = "0.4.0";

function sh(cmd: string, args: string[], cwd: string, timeoutMs = 5 * 60_000): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20, env: process.env });
  if (r.status !== 0) {
    throw new Error(
      `building berth ${OLD_VERSION}: \`${cmd} ${args.join(" ")}\` in ${cwd} failed (${r.error?.message ?? `exit ${r.status}`}):\n${(r.stdout ?? "").slice(-2000)}\n${(r.stderr ?? "").slice(-4000)}`,
    );
  }
  return r.stdout;
}

/** The version a binary reports (`berth version -o json`), or why it cannot say. */
function versionOf(bin: string): { version?: string; why?: string } {
  const r = spawnSync(bin, ["version", "-o", "json"], { encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  if (r.status !== 0) return { why: `${bin} version: ${r.error?.message ?? `exit ${r.status}`} ${r.stderr ?? ""}` };
  try {
    return { version: String(JSON.parse(r.stdout).version) };
  } catch {
    return { why: `${bin} version -o json printed ${r.stdout.slice(0, 200)}` };
  }
}

let built: string | undefined;

/** Path of the berth 0.4.0 binary (built and cached on first use). Throws if it cannot be built. */
export function oldBerth(): string {
  if (built) return built;
  if (process.env.BERTH_OLD_BIN) {
    const v = versionOf(process.env.BERTH_OLD_BIN);
    if (v.version !== OLD_VERSION) throw new Error(`BERTH_OLD_BIN=${process.env.BERTH_OLD_BIN} is not berth ${OLD_VERSION}: ${v.version ?? v.why}`);
    return (built = process.env.BERTH_OLD_BIN);
  }
  const cacheDir = join(process.env.BERTH_CACHE_DIR ?? join(homedir(), ".cache/berth"), `berth-${OLD_VERSION}-${OLD_COMMIT.slice(0, 12)}`);
  const bin = join(cacheDir, "berth");
  if (existsSync(bin) && versionOf(bin).version === OLD_VERSION) return (built = bin);

  // The commit must be in this repository's history.
  sh("git", ["-C", ROOT, "cat-file", "-e", `${OLD_COMMIT}^{commit}`], ROOT);
  const tmp = mkdtempSync(join(tmpdir(), `berth-${OLD_VERSION}-src-`));
  const tree = join(tmp, "tree");
  const t0 = Date.now();
  try {
    sh("git", ["-C", ROOT, "worktree", "add", "--detach", tree, OLD_COMMIT], ROOT);
    const modules = join(ROOT, "node_modules");
    if (!existsSync(modules)) throw new Error(`building berth ${OLD_VERSION}: ${modules} is missing (run npm ci)`);
    symlinkSync(realpathSync(modules), join(tree, "node_modules"));
    // The commit's own build script (bun build --compile ... --outfile dist/berth).
    sh("npm", ["run", "--silent", "build"], tree, 10 * 60_000);
    const out = join(tree, "dist/berth");
    const v = versionOf(out);
    if (v.version !== OLD_VERSION) throw new Error(`building berth ${OLD_VERSION}: the binary built at ${OLD_COMMIT} reports ${v.version ?? v.why}`);
    mkdirSync(cacheDir, { recursive: true });
    // Into the cache by rename: a concurrent reader never sees half a file.
    const partial = join(cacheDir, `.berth.${process.pid}.new`);
    copyFileSync(out, partial);
    chmodSync(partial, 0o755);
    renameSync(partial, bin);
    console.error(`[old-berth] built berth ${OLD_VERSION} from ${OLD_COMMIT.slice(0, 12)} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${bin}`);
  } finally {
    const r = spawnSync("git", ["-C", ROOT, "worktree", "remove", "--force", tree], { encoding: "utf8" });
    if (r.status !== 0 && existsSync(tree)) console.error(`[old-berth] git worktree remove --force ${tree}: ${r.stderr}`);
    spawnSync("git", ["-C", ROOT, "worktree", "prune"], { encoding: "utf8" });
    rmSync(tmp, { recursive: true, force: true });
  }
  return (built = bin);
}
