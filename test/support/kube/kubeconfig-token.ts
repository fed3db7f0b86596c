/**
 * The bearer token in a kubeconfig file, for tests that write a kubeconfig
 * of their own with the same identity (through a fault proxy, say).
 */
import { readFileSync } from "node:fs";

/** The `token:` of the kubeconfig at `file`; throws naming the file when it has none. */
export function tokenOf(file: string): string {
  const token = /^\s*token:\s*"?([^"\s]+)"?/m.exec(readFileSync(file, "utf8"))?.[1];
  if (!token) throw new Error(`${file}: no token`);
  return token;
}
