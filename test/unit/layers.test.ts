/**
 * The layers of plugin/ and which way imports may run between them. A new
 * import against the direction fails here, naming the file and the import.
 */

import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { LAZY_ENTRIES, type LazyEntry } from "../../plugin/support/lazy-entries.ts";

const root = resolve(import.meta.dirname, "../..");

/**
 * Layer → the layers it may import (besides itself). "entry" is plugin/'s
 * own files (main.ts and the two entries), which wire everything together.
 */
const ALLOWED: Record<string, string[]> = {
  entry: ["cni", "cli", "ipam", "support", "store", "cluster", "controller", "install", "check", "adopt"],
  cli: ["cni", "ipam", "support", "store", "install", "controller", "check", "adopt"],
  cni: ["local", "ipam", "kube", "support", "store"],
  local: ["ipam", "support", "store"],
  cluster: ["ipam", "kube", "support", "store"],
  controller: ["check", "reconcile", "cluster", "kube", "ipam", "support"],
  reconcile: ["cluster", "kube", "ipam", "support"],
  check: ["reconcile", "cluster", "kube", "ipam", "support", "store"],
  adopt: ["check", "cluster", "kube", "ipam", "support"],
  install: ["support"],
  kube: ["ipam", "support"],
  ipam: ["support", "store"],
  support: [],
  store: [],
};

function layerOf(file: string): string {
  const rel = relative(root, file).split("/");
  if (rel[0] === "store") return "store";
  return rel.length === 2 ? "entry" : rel[1];
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Static imports, `import type`, re-exports and `import("…")` with a literal specifier. */
function importsOf(file: string): string[] {
  const src = readFileSync(file, "utf8");
  const specs = [...src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/g), ...src.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)];
  return specs.map((m) => m[1]).filter((s) => s.startsWith("."));
}

const files = [...tsFiles(join(root, "plugin")), ...tsFiles(join(root, "store"))];

test("every plugin/ file belongs to a known layer", () => {
  for (const f of files) assert.ok(layerOf(f) in ALLOWED, `${relative(root, f)}: unknown layer ${layerOf(f)}`);
});

test("imports run only in the allowed directions", () => {
  const wrong: string[] = [];
  for (const f of files) {
    const from = layerOf(f);
    for (const spec of importsOf(f)) {
      const to = layerOf(resolve(dirname(f), spec));
      if (to !== from && !ALLOWED[from].includes(to)) wrong.push(`${relative(root, f)} (${from}) imports ${spec} (${to})`);
    }
  }
  assert.equal(wrong, []);
});

/** `import(lazySpecifier("NAME", …))` calls, as the lazy entries they load; and every `import(` with a computed specifier. */
function lazyImportsOf(file: string): { lazy: LazyEntry[]; computed: string[] } {
  const src = readFileSync(file, "utf8");
  const lazy = [...src.matchAll(/lazySpecifier\(\s*["'](\w+)["']/g)].map((m) => m[1] as LazyEntry);
  const computed = [...src.matchAll(/\bimport\(\s*([^"'\s)][^)]*)\)/g)].map((m) => m[1]);
  return { lazy, computed };
}

test("lazily loaded modules: each one listed in support/lazy-entries.ts exists, and each lazy import is checked like a static one", () => {
  for (const [name, path] of Object.entries(LAZY_ENTRIES)) assert.ok(files.includes(join(root, "plugin", path)), `lazy entry ${name}: plugin/${path} exists`);
  const wrong: string[] = [];
  let seen = 0;
  for (const f of files) {
    const from = layerOf(f);
    const { lazy, computed } = lazyImportsOf(f);
    for (const name of lazy) {
      seen++;
      assert.ok(name in LAZY_ENTRIES, `${relative(root, f)} loads ${name}, which lazy-entries.ts does not list`);
      const to = layerOf(join(root, "plugin", LAZY_ENTRIES[name]));
      if (to !== from && !ALLOWED[from].includes(to)) wrong.push(`${relative(root, f)} (${from}) loads ${name} (${to})`);
    }
    // A computed specifier other than lazySpecifier(...) would be an entry the build does not know.
    for (const c of computed) if (!/^lazySpecifier\(/.test(c.trim())) wrong.push(`${relative(root, f)}: import(${c}) is not a listed lazy entry`);
  }
  assert.equal(wrong, []);
  assert.ok(seen >= Object.keys(LAZY_ENTRIES).length, `every lazy entry is loaded somewhere (${seen} loads seen)`);
});

test("the checker sees imports at all (guards the regexes above)", () => {
  const main = importsOf(join(root, "plugin/cni/cni-main.ts"));
  assert.ok(main.includes("../local/local-commands.ts"), main.join(", "));
  assert.ok(
    main.some((s) => s.startsWith("../../store/")),
    main.join(", "),
  );
});

test.run();
