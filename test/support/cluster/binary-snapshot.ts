/**
 * Runs the cluster tests against a private copy of dist/berth.
 *
 * Imported by cluster-env.ts before test/support/berth.ts, it copies
 * dist/berth to a temp dir once per process and points BERTH_BIN there
 * (which berth.ts honours), so every call in this process, direct or through
 * the bridge plugin, runs one consistent binary. Without it, an `npm run
 * build` elsewhere in the work tree while the tests run rewrites the file
 * under them: exec fails with ETXTBSY, and the bridge plugin's libcni retry
 * of the same exec.Cmd then reports "netplugin failed with no error message:
 * read |0: file already closed" for a berth that never ran.
 *
 * A copy caught mid-write is detected by running it (CNI VERSION) and taken
 * again. BERTH_BIN set by the caller is used as it is.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnCniSync } from "../spawn-cni.ts";

function works(bin: string): boolean {
  const r = spawnCniSync(bin, { command: "VERSION", stdin: "" }, 20_000);
  return r.status === 0 && Array.isArray(r.json?.supportedVersions);
}

function snapshot(): void {
  if (process.env.BERTH_BIN) return;
  const source = resolve(import.meta.dirname, "../../../dist/berth");
  if (!existsSync(source)) return; // berth.ts reports the missing build
  const dir = mkdtempSync(join(tmpdir(), "berth-cluster-bin-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const copy = join(dir, "berth");
  for (let attempt = 1; ; attempt++) {
    copyFileSync(source, copy);
    if (works(copy)) break;
    if (attempt >= 5) throw new Error(`a copy of ${source} does not run (CNI VERSION failed 5 times): is a build writing it? run 'npm run build'`);
    spawnSync("sleep", ["1"]);
  }
  process.env.BERTH_BIN = copy;
}

snapshot();
