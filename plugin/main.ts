/** The one entry of the binary: a CNI plugin when CNI_COMMAND is set, otherwise the operator CLI. */
import { readFileSync, writeSync } from "node:fs";
import type { OpenDriver } from "../store/driver.ts";
import { runCli } from "./cli/cli.ts";
import { runCni } from "./cni/cni-main.ts";
import type { CommandTable } from "./ipam/command.ts";
import { lazySpecifier } from "./support/lazy-entries.ts";

// Cluster mode, the operator commands (controller, check, adopt) and the installer are entries of their own (support/lazy-entries.ts).
type OperatorCommands = typeof import("./operator-commands.ts");
const loadOperator = async () => (await import(lazySpecifier("operator", 0))) as OperatorCommands;
const loadClusterCommands = async () => ((await import(lazySpecifier("cluster", 0))) as { clusterCommands: CommandTable }).clusterCommands;
const loadController = async () => (await loadOperator()).controllerMain;
const loadInstall = async () => (await import(lazySpecifier("install", 0))) as typeof import("./install/install.ts");
const loadCheck = loadOperator;
const loadAdopt = loadOperator;

// Not CNI_PATH: operators' shells export it, runtimes always set the others.
const CNI_VARS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"];

/**
 * A runtime runs plugins with no arguments and CNI_* variables set. Any of
 * them present (even CNI_COMMAND empty) means a plugin call, so a runtime
 * that forgot CNI_COMMAND gets CNI error 4 rather than the help text. Words
 * on the command line always mean the CLI: an operator's shell may well
 * export CNI_PATH.
 */
export function invokedAsPlugin(argv: string[], env: Record<string, string | undefined>): boolean {
  return argv.length === 0 && CNI_VARS.some((k) => env[k] !== undefined);
}

/** Runs berth in this process and resolves to the exit code (entries must not use top-level await: `--bytecode`). */
export async function main(argv: string[], env: Record<string, string | undefined>, openDriver: OpenDriver): Promise<number> {
  const writeAll = (fd: number, text: string) => {
    const buf = Buffer.from(text);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
  };
  if (invokedAsPlugin(argv, env)) {
    return runCni({ env, readStdin: () => readFileSync(0, "utf8"), write: (t) => writeAll(1, t), openDriver, loadClusterCommands });
  }
  try {
    return await runCli(argv, { out: (t) => writeAll(1, t), err: (t) => writeAll(2, t), openDriver, loadController, loadInstall, loadCheck, loadAdopt });
  } catch (err) {
    writeAll(2, `berth: ${(err as Error).message}\n`);
    return 1;
  }
}
