/**
 * The plugin's cluster entry must not carry @kubernetes/client-node: bundled
 * even unevaluated it costs every cluster command its start-up (measured:
 * ~50 ms of wall time and of CPU per process). Only the controller's entry
 * and the fallback wire's may.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = resolve(import.meta.dirname, "../../..");

/** The modules bun bundles into `entry` (their path comments in an unminified bundle). */
function bundledModules(entry: string): string[] {
  const out = mkdtempSync(join(tmpdir(), "berth-bundle-"));
  try {
    const r = spawnSync(join(root, "node_modules/.bin/bun"), ["build", "--target=bun", "--outdir", out, entry], { cwd: root, encoding: "utf8" });
    assert.is(r.status, 0, r.stderr);
    const js = readFileSync(join(out, entry.replace(/^.*\//, "").replace(/\.ts$/, ".js")), "utf8");
    return [...js.matchAll(/^\/\/ (\S+)$/gm)].map((m) => m[1]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

test("the cluster entry bundles no @kubernetes/client-node, js-yaml or node-fetch", () => {
  const modules = bundledModules("plugin/cluster/cluster-commands.ts");
  assert.ok(
    modules.some((m) => m.includes("kube-request.ts")),
    `the check sees the bundle's modules: ${modules.slice(0, 5).join(", ")}`,
  );
  assert.equal(
    modules.filter((m) => /node_modules\/(@kubernetes|js-yaml|node-fetch)/.test(m)),
    [],
  );
});

test("the fallback wire's entry does (the check can see it)", () => {
  assert.ok(bundledModules("plugin/kube/client-node-wire.ts").some((m) => m.includes("node_modules/@kubernetes/client-node")));
});

test.run();
