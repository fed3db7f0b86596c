/** The one entry of the binary: a CNI plugin when CNI_COMMAND is set, otherwise the operator CLI. */
import { readFileSync, writeSync } from "node:fs";
import { runCli } from "./cli/cli.ts";
import { runCni } from "./cni/cni-main.ts";
import type { OpenDriver } from "../store/driver.ts";
import type { CommandTable } from "./ipam/command.ts";

/**
 * Cluster mode, the controller and the installer live in entry points of
 * their own (see the build script), imported by specifiers the bundler cannot
 * fold: bundled into the main entry, the Kubernetes client cost every
 * local-mode start ~5 ms even unevaluated, and the installer's node:crypto
 * ~3 ms (both measured). They are resolved from this file, which sits at the
 * root of the bundle as it does in the source tree.
 */
const CLUSTER_MODULE = ["./cluster", "cluster-commands.ts"].join("/");
const CONTROLLER_MODULE = ["./controller", "controller-main.ts"].join("/");
const INSTALL_MODULE = ["./install", "install.ts"].join("/");

const loadClusterCommands = async () => ((await import(CLUSTER_MODULE)) as { clusterCommands: CommandTable }).clusterCommands;
const loadController = async () => ((await import(CONTROLLER_MODULE)) as typeof import("./controller/controller-main.ts")).controllerMain;
const loadInstall = async () => (await import(INSTALL_MODULE)) as typeof import("./install/install.ts");

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
    return await runCli(argv, { out: (t) => writeAll(1, t), err: (t) => writeAll(2, t), openDriver, loadController, loadInstall });
  } catch (err) {
    writeAll(2, `berth: ${(err as Error).message}\n`);
    return 1;
  }
}
