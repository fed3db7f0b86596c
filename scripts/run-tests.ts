/**
 * Runs every test group (Node and bun), streams their output, and ends with
 * one summary line: "tests: N passed, N failed". Exits non-zero if any group
 * failed, crashed, or ran no test.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const uvu = ["--import", "tsx", "node_modules/uvu/bin.js"];
const groups: { name: string; cmd: string; args: string[]; before?: string[] }[] = [
  { name: "unit", cmd: "node", args: [...uvu, "test/unit", "\\.test\\.ts$"] },
  { name: "store contract (better-sqlite3)", cmd: "node", args: [...uvu, "test/store", "\\.test\\.ts$"] },
  { name: "store contract (bun:sqlite)", cmd: "node_modules/.bin/bun", args: ["test/store/bun-sqlite.bun.ts"] },
  { name: "compiled binary", cmd: "node", args: [...uvu, "test/binary", "\\.test\\.ts$"] },
  { name: "bridge chain in network namespaces", cmd: "node", args: [...uvu, "test/chain", "\\.test\\.ts$"] },
  // Starts etcd, kube-apiserver and kube-controller-manager first (building them once, ~10 min, then cached).
  { name: "cluster mode on the test control plane", cmd: "node", args: [...uvu, "test/cluster", "\\.test\\.ts$"], before: ["bash", "scripts/testenv.sh", "up"] },
];

const only = process.argv.slice(2);
let passed = 0;
let failed = 0;
for (const g of groups) {
  if (only.length && !only.some((o) => g.name.includes(o))) continue;
  process.stdout.write(`\n=== ${g.name}\n`);
  const env: Record<string, string | undefined> = { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" };
  if (g.before) {
    const pre = spawnSync(g.before[0], g.before.slice(1), { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    if (pre.status !== 0) {
      failed += 1;
      process.stdout.write(`--- ${g.name}: FAILED (${g.before.join(" ")} exited ${pre.status})\n`);
      continue;
    }
    // `testenv.sh up` prints export lines for the tests.
    for (const m of pre.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]] = m[2].replace(/^'(.*)'$/, "$1");
  }
  const r = spawnSync(g.cmd, g.args, { cwd: root, encoding: "utf8", env, maxBuffer: 64 << 20 });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  const plain = r.stdout.replace(/\x1b\[[0-9;]*m/g, "");
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  passed += ok;
  failed += total - ok;
  if (r.status !== 0 || total === 0) {
    if (total - ok === 0) failed += 1; // crashed, or ran nothing: count it
    process.stdout.write(`--- ${g.name}: FAILED (exit ${r.status}${r.error ? `, ${r.error.message}` : ""}${total === 0 ? ", no test ran" : ""})\n`);
  }
}
process.stdout.write(`\ntests: ${passed} passed, ${failed} failed\n`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
