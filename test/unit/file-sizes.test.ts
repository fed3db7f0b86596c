/**
 * Small files (issue 18): no source file of plugin/ or store/ over 300
 * lines, no script over 600. A file that grows past them is split by job,
 * as controller.ts was (docs/architecture.md, "Where a change goes").
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = resolve(import.meta.dirname, "../..");

function filesOf(dir: string, match: RegExp): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesOf(p, match) : match.test(n) ? [p] : [];
  });
}

const lines = (f: string) => readFileSync(f, "utf8").replace(/\n$/, "").split("\n").length;
const over = (files: string[], limit: number) => files.filter((f) => lines(f) > limit).map((f) => `${relative(root, f)}: ${lines(f)} lines`);

test("no source file in plugin/ or store/ exceeds 300 lines", () => {
  const files = [...filesOf(join(root, "plugin"), /\.ts$/), ...filesOf(join(root, "store"), /\.ts$/)];
  assert.ok(files.length > 100, `found the sources (${files.length})`);
  assert.equal(over(files, 300), []);
});

test("no script exceeds 600 lines", () => {
  const files = filesOf(join(root, "scripts"), /\.(ts|sh)$/);
  assert.ok(files.length > 10, `found the scripts (${files.length})`);
  assert.equal(over(files, 600), []);
});

test.run();
