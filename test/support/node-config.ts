/**
 * The node configuration the tests run berth with. berth holds dataDir,
 * logFile and kubeconfig to documented prefixes (/var/lib/cni/, /var/log/,
 * /etc/cni/net.d/berth.d/) unless the node allows more; the tests keep everything
 * under the temp directory, so their "node" allows that, as a node's root
 * would in /etc/cni/net.d/berth.d/node.json.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let file: string | undefined;

/** Path of a node configuration allowing paths under the temp directory (written once, root-owned, 0644). */
export function testNodeConfig(): string {
  if (file && existsSync(file)) return file;
  const dir = join(tmpdir(), `berth-test-node-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  file = join(dir, "node.json");
  // Written aside and renamed over: every test process writes it once, and a plugin another process runs
  // meanwhile must read the whole file, never one truncated for rewriting (which failed an ADD once).
  const next = `${file}.${process.pid}`;
  writeFileSync(next, `${JSON.stringify({ extraPathPrefixes: [`${tmpdir()}/`] })}\n`, { mode: 0o644 });
  renameSync(next, file);
  return file;
}
