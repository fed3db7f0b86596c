/** The one entry of the binary: a CNI plugin when CNI_COMMAND is set, otherwise the operator CLI. */
import { readFileSync, writeSync } from "node:fs";
import { runCli } from "./cli.ts";
import { runCni } from "./cni-main.ts";
import type { OpenDriver } from "../store/driver.ts";

const CNI_VARS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"];

/**
 * A runtime sets CNI_* variables; an operator at a shell does not. Any of
 * them present (even CNI_COMMAND empty) means a plugin call, so a runtime
 * that forgot CNI_COMMAND gets CNI error 4 rather than the help text.
 */
export function invokedAsPlugin(env: Record<string, string | undefined>): boolean {
  return CNI_VARS.some((k) => env[k] !== undefined);
}

/** Runs berth in this process and returns the exit code. Synchronous: `--bytecode` builds reject top-level await. */
export function main(argv: string[], env: Record<string, string | undefined>, openDriver: OpenDriver): number {
  const writeAll = (fd: number, text: string) => {
    const buf = Buffer.from(text);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
  };
  if (invokedAsPlugin(env)) {
    return runCni({ env, readStdin: () => readFileSync(0, "utf8"), write: (t) => writeAll(1, t), openDriver });
  }
  try {
    return runCli(argv, { out: (t) => writeAll(1, t), err: (t) => writeAll(2, t), openDriver });
  } catch (err) {
    writeAll(2, `berth: ${(err as Error).message}\n`);
    return 1;
  }
}
