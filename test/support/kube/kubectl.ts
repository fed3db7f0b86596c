/**
 * The one kubectl helper: the cached kubectl 1.20.2 of the test control
 * plane (not whatever `kubectl` is on PATH), with the plane's discovery
 * cache (it knows the CRDs' short names), as admin unless told otherwise.
 *
 * Only where a test checks what kubectl itself prints or does: the pools'
 * printer columns (`kubectl get sp`), `kubectl auth can-i` against the
 * shipped roles, and the documentation's commands, which a shell runs as a
 * reader types them (`kubectlShim`). Everything else goes through the admin
 * client (admin-client.ts).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { controlPlane } from "../control-plane.ts";

export interface KubectlOptions {
  /** stdin */
  input?: string;
  /** Default: the plane's admin kubeconfig; the plugin's to act as the plugin. */
  kubeconfig?: string;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface KubectlResult {
  status: number;
  stdout: string;
  stderr: string;
}

function binary(): string {
  const bin = controlPlane().kubectl;
  if (!bin || !existsSync(bin)) throw new Error(`kubectl 1.20.2 not found (${bin || "no BERTH_KUBECTL, no KUBECTL= in $BERTH_TESTENV_DIR/env"})`);
  return bin;
}

const cacheDir = () => join(controlPlane().dir, "kube-cache");

/** Runs kubectl with `args`. Never throws on a non-zero exit. */
export function kubectl(args: string[], opts: KubectlOptions = {}): KubectlResult {
  const r = spawnSync(binary(), ["--kubeconfig", opts.kubeconfig ?? controlPlane().adminKubeconfig, "--cache-dir", cacheDir(), ...args], {
    input: opts.input ?? "",
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 64 << 20,
  });
  const stderr = (r.stderr ?? "") + (r.error ? `\n${r.error.message}` : "");
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr };
}

/**
 * Writes `DIR/kubectl`, which runs the plane's kubectl with its discovery
 * cache, for a shell that has DIR first on PATH and names its kubeconfig in
 * KUBECONFIG (docs/doc-shell.ts). Returns its path.
 */
export function kubectlShim(dir: string): string {
  const shim = join(dir, "kubectl");
  writeFileSync(shim, `#!/bin/sh\nexec '${binary()}' --cache-dir '${cacheDir()}' "$@"\n`);
  chmodSync(shim, 0o755);
  return shim;
}

/** `kubectl get sp NAMES` (default columns), each line whitespace-normalised: kubectl's own output, on purpose. */
export function spTable(...pools: string[]): string[] {
  const r = kubectl(["get", "sp", ...pools]);
  if (r.status !== 0) throw new Error(`kubectl get sp ${pools.join(" ")} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).join(" "));
}
