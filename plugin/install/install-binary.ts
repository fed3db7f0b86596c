/**
 * The binary half of `berth install`: the plugin is replaced only by a
 * complete, verified copy, because the container runtime may exec it at any
 * moment.
 */
import { accessSync, chmodSync, constants, lstatSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../support/logger.ts";
import { copyFileAtomic, describeError, fileDigest, InstallError, modeOf, removeStaleTemps } from "./atomic-file.ts";

/** The plugin's file name in the CNI bin directory (the `type` in network configurations). */
export const PLUGIN_NAME = "berth";

/** Temporary files older than this in the bin directory are leftovers of an interrupted install. */
const STALE_TEMP_MS = 10 * 60_000;

/**
 * Throws unless `source` is a regular file and `binDir` a writable directory,
 * so that a missing host mount is reported as such rather than as a failed write.
 */
function checkInstallable(source: string, binDir: string): void {
  let src: ReturnType<typeof statSync>;
  try {
    src = statSync(source);
  } catch (err) {
    throw new InstallError(`cannot read the binary to install ${source}: ${describeError(err)}`);
  }
  if (!src.isFile()) throw new InstallError(`the binary to install ${source} is not a regular file`);
  let dir: ReturnType<typeof statSync>;
  try {
    dir = statSync(binDir);
  } catch (err) {
    throw new InstallError(`CNI bin dir ${binDir}: ${describeError(err)} (is the host's CNI bin directory mounted there?)`);
  }
  if (!dir.isDirectory()) throw new InstallError(`CNI bin dir ${binDir} is not a directory`);
  try {
    accessSync(binDir, constants.W_OK);
  } catch (err) {
    throw new InstallError(`CNI bin dir ${binDir} is not writable: ${describeError(err)}`);
  }
}

/**
 * Copies `source` to `<binDir>/berth` unless it already has the same content
 * (size and SHA-256). Returns what it did.
 */
export function installBinary(source: string, binDir: string, log: Logger): "copied" | "unchanged" {
  checkInstallable(source, binDir);
  for (const p of removeStaleTemps(binDir, PLUGIN_NAME, STALE_TEMP_MS)) log.info("removed a temporary file left by an interrupted install", { path: p });

  const target = join(binDir, PLUGIN_NAME);
  let want: ReturnType<typeof fileDigest>;
  try {
    want = fileDigest(source);
  } catch (err) {
    throw new InstallError(`cannot read the binary to install ${source}: ${describeError(err)}`);
  }
  let have: { size: number; sha256: string } | undefined;
  try {
    const st = lstatSync(target);
    if (st.isFile() && st.size === want.size) have = fileDigest(target);
  } catch {
    have = undefined; // absent or unreadable: replace it
  }
  if (have && have.sha256 === want.sha256) {
    if (modeOf(target) !== 0o755) chmodSync(target, 0o755);
    log.info("binary unchanged (identical content)", { path: target, bytes: want.size, sha256: want.sha256 });
    return "unchanged";
  }
  copyFileAtomic(source, target, 0o755, want.sha256);
  log.info("binary copied", { from: source, to: target, bytes: want.size, sha256: want.sha256 });
  return "copied";
}
