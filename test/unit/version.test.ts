/** The version the binary reports is the package's (and the deploy manifests' image tag). */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BERTH_VERSION } from "../../plugin/support/version.ts";

const root = resolve(import.meta.dirname, "../..");

test("plugin/support/version.ts matches package.json", () => {
  assert.is(BERTH_VERSION, JSON.parse(readFileSync(resolve(root, "package.json"), "utf8")).version);
});

test("package-lock.json carries the same version (top level and its root package)", () => {
  const lock = JSON.parse(readFileSync(resolve(root, "package-lock.json"), "utf8"));
  assert.is(lock.version, BERTH_VERSION, "package-lock.json version");
  assert.is(lock.packages[""].version, BERTH_VERSION, 'package-lock.json packages[""].version');
});

test("the deploy manifests run the image of this version", () => {
  for (const f of ["daemonset.yaml", "controller.yaml"]) {
    assert.match(readFileSync(resolve(root, "fixtures/deploy", f), "utf8"), `:${BERTH_VERSION}`, f);
  }
});

test.run();
