/**
 * `berth install --check`: the DaemonSet's readiness probe. The pod is Ready
 * only once the host has what `berth install` puts there, so that
 * `kubectl rollout status` means the plugin can run. It only reads: a probe
 * runs on every node for as long as the pod does.
 */
import { closeSync, lstatSync, openSync, readSync, type Stats, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { describeError } from "./atomic-file.ts";
import { PLUGIN_NAME } from "./install-binary.ts";

/** Read size of the content comparison: measured a little faster than 256 KiB or 4 MiB on the 116 MB binary (cache-sized buffers). */
const CHUNK = 1 << 20;

/**
 * lstat (what install leaves is never a link: it renames a regular file into
 * place) or, with `follow`, stat; or the problem as words.
 */
function look(path: string, follow = false): Stats | string {
  try {
    return follow ? statSync(path) : lstatSync(path);
  } catch (err) {
    return describeError(err);
  }
}

/** A problem with a file's kind or permission bits, or undefined. */
function shapeProblem(what: string, path: string, st: Stats | string, dir: boolean, mode: number): string | undefined {
  if (typeof st === "string") return `${what} ${path}: ${st}`;
  if (dir ? !st.isDirectory() : !st.isFile()) return `${what} ${path} is not a ${dir ? "directory" : "regular file"}`;
  const have = st.mode & 0o7777;
  if (have !== mode) return `${what} ${path} has mode ${have.toString(8).padStart(4, "0")}, expected ${mode.toString(8).padStart(4, "0")}`;
  return undefined;
}

/**
 * Whether two files of equal size hold the same bytes, read side by side and
 * stopping at the first difference. Cheaper than hashing both, and exact: an
 * older build of the same size differs somewhere and is caught.
 */
function sameContent(a: string, b: string): boolean {
  const fa = openSync(a, "r");
  try {
    const fb = openSync(b, "r");
    try {
      const ba = Buffer.allocUnsafe(CHUNK);
      const bb = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const na = readSync(fa, ba, 0, CHUNK, null);
        let nb = 0;
        // A short read is not the end of the file: fill up to na before comparing.
        while (nb < na) {
          const n = readSync(fb, bb, nb, na - nb, null);
          if (n === 0) return false;
          nb += n;
        }
        if (na === 0) return readSync(fb, bb, 0, 1, null) === 0;
        if (!ba.subarray(0, na).equals(bb.subarray(0, na))) return false;
      }
    } finally {
      closeSync(fb);
    }
  } finally {
    closeSync(fa);
  }
}

/**
 * What keeps the node from being ready, as one line naming the path, or
 * undefined when `<cniBinDir>/berth` is `source` byte for byte with mode 0755
 * and the kubeconfig is a regular file, 0600, in a 0700 directory. Cheap
 * checks come first; the content is compared last, only when all else holds.
 */
export function installProblem(opts: { source: string; cniBinDir: string; kubeconfigOut: string }): string | undefined {
  const plugin = join(opts.cniBinDir, PLUGIN_NAME);
  const pst = look(plugin);
  const problem =
    shapeProblem("the plugin", plugin, pst, false, 0o755) ??
    shapeProblem("the kubeconfig directory", dirname(opts.kubeconfigOut), look(dirname(opts.kubeconfigOut)), true, 0o700) ??
    shapeProblem("the kubeconfig", opts.kubeconfigOut, look(opts.kubeconfigOut), false, 0o600);
  if (problem) return problem;
  const src = look(opts.source, true);
  if (typeof src === "string") return `the binary to install ${opts.source}: ${src}`;
  const size = (pst as Stats).size;
  if (size !== src.size) return `the plugin ${plugin} has ${size} bytes, ${opts.source} has ${src.size}: not this version (yet)`;
  try {
    if (!sameContent(opts.source, plugin)) return `the plugin ${plugin} differs from ${opts.source}: not this version (yet)`;
  } catch (err) {
    return `cannot compare the plugin ${plugin} with ${opts.source}: ${describeError(err)}`;
  }
  return undefined;
}
