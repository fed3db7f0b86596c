/** The example network configurations in fixtures/ stay valid. */

import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseNetConf } from "../../plugin/cni/netconf.ts";

const dir = resolve(import.meta.dirname, "../../fixtures/netconf");
const files = readdirSync(dir);

test("there are example configurations", () => {
  assert.ok(files.length >= 3, files.join(", "));
});

for (const f of files) {
  test(`${f} is a valid berth configuration`, () => {
    const raw = JSON.parse(readFileSync(join(dir, f), "utf8"));
    // A runtime hands each plugin of a list its own config with the list's name and version.
    const confs = raw.plugins ? raw.plugins.filter((p: any) => p.ipam).map((p: any) => ({ cniVersion: raw.cniVersion, name: raw.name, ...p })) : [raw];
    assert.ok(confs.length > 0);
    for (const c of confs) {
      const n = parseNetConf(JSON.stringify(c));
      // Local mode names its pools; cluster mode (a kubeconfig) finds them on the API server.
      if (c.ipam.kubeconfig) assert.equal([n.ipam.kubeconfig, n.ipam.pools], [c.ipam.kubeconfig, []]);
      else assert.ok(n.ipam.pools.length > 0);
    }
  });
}

test.run();
