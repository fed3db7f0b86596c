/**
 * Files that appear under their final name whole or not at all: written to a
 * temporary name in the same directory, flushed, given their mode, then
 * renamed over the target (rename(2) within one file system is atomic).
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { brand, isKind } from "../support/errors.ts";

/** An install step that failed for a reason outside berth: the message names the path and the cause. */
export class InstallError extends Error {
  static readonly brand = "InstallError";
  constructor(message: string) {
    super(message);
    brand(this, InstallError.brand);
  }
}

const CHUNK = 1 << 20;

/** Temporary files of `name` in its directory start with this: `.berth.tmp-<pid>-<random>`. */
export function tempPrefix(name: string): string {
  return `.${name}.tmp-`;
}

/** A file system error as words: "does not exist", "permission denied", ... (the code stays in brackets). */
export function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    ENOENT: "does not exist",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    ENOTDIR: "a path component is not a directory",
    EISDIR: "is a directory",
    ENOSPC: "no space left on device",
    EDQUOT: "disk quota exceeded",
    EXDEV: "not on the same file system",
  };
  return e?.code && words[e.code] ? `${words[e.code]} (${e.code})` : (e?.message ?? String(err));
}

/** Size and SHA-256 (hex) of a file's content, read in chunks. */
export function fileDigest(path: string): { size: number; sha256: string } {
  const fd = openSync(path, "r");
  try {
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (let n: number; (n = readSync(fd, buf, 0, CHUNK, null)) > 0; size += n) hash.update(buf.subarray(0, n));
    return { size, sha256: hash.digest("hex") };
  } finally {
    closeSync(fd);
  }
}

function tempPath(target: string): string {
  return join(dirname(target), `${tempPrefix(basename(target))}${process.pid}-${randomBytes(4).toString("hex")}`);
}

function writeAll(fd: number, buf: Buffer, length = buf.length): void {
  for (let off = 0; off < length; ) off += writeSync(fd, buf, off, length - off);
}

/** Flushes a directory's entries (the rename) to disk; best effort: not every file system allows it. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch {
    // e.g. EINVAL on some network file systems: the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Creates a temporary file next to `target`, lets `fill` write it, sets
 * `mode`, fsyncs, and renames it over `target`. The temporary file has mode
 * 0600 while it is written and is removed if anything fails.
 */
function replaceAtomically(target: string, mode: number, fill: (fd: number) => void): void {
  const tmp = tempPath(target);
  let fd: number | undefined;
  try {
    try {
      fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      throw new InstallError(`cannot create a file in ${dirname(target)}: ${describeError(err)}`);
    }
    try {
      fill(fd);
      fchmodSync(fd, mode);
      fsyncSync(fd);
    } catch (err) {
      if (isKind(err, InstallError)) throw err;
      throw new InstallError(`cannot write ${tmp}: ${describeError(err)}`);
    }
    closeSync(fd);
    fd = undefined;
    try {
      renameSync(tmp, target);
    } catch (err) {
      throw new InstallError(`cannot rename ${tmp} to ${target}: ${describeError(err)}`);
    }
    syncDir(dirname(target));
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed, or never created
    }
    throw err;
  }
}

/** Writes `data` to `target` atomically with `mode` (see replaceAtomically). */
export function writeFileAtomic(target: string, data: string | Buffer, mode: number): void {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  replaceAtomically(target, mode, (fd) => writeAll(fd, buf));
}

/**
 * Copies `source` to `target` atomically with `mode`. The copy is hashed as it
 * is written and refused if it does not match `expectedSha256` (the source
 * changed while it was copied), so the target is never a mix of two versions.
 */
export function copyFileAtomic(source: string, target: string, mode: number, expectedSha256: string): void {
  let src: number;
  try {
    src = openSync(source, "r");
  } catch (err) {
    throw new InstallError(`cannot read ${source}: ${describeError(err)}`);
  }
  try {
    replaceAtomically(target, mode, (fd) => {
      const hash = createHash("sha256");
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let n: number; (n = readSync(src, buf, 0, CHUNK, null)) > 0; ) {
        hash.update(buf.subarray(0, n));
        writeAll(fd, buf, n);
      }
      const got = hash.digest("hex");
      if (got !== expectedSha256)
        throw new InstallError(`${source} changed while it was copied (sha256 ${got}, expected ${expectedSha256}); nothing was replaced`);
    });
  } finally {
    closeSync(src);
  }
}

/**
 * Removes temporary files of `name` in `dir` that were left by an interrupted
 * run (older than `olderThanMs`, so a copy in progress is left alone).
 * Returns the paths removed.
 */
export function removeStaleTemps(dir: string, name: string, olderThanMs: number): string[] {
  const removed: string[] = [];
  const prefix = tempPrefix(name);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.startsWith(prefix)) continue;
    const p = join(dir, e);
    try {
      const st = lstatSync(p);
      if (st.isFile() && Date.now() - st.mtimeMs > olderThanMs) {
        unlinkSync(p);
        removed.push(p);
      }
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}

/** The mode bits (permissions) of an open file or a path. */
export function modeOf(pathOrFd: string | number): number {
  return (typeof pathOrFd === "number" ? fstatSync(pathOrFd) : statSync(pathOrFd)).mode & 0o7777;
}
