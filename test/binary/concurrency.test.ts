/** Many plugin processes at once against one node database. */

import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BERTH, cni, cniAsync, netconf, podArgs, sql, tempDir } from "../support/berth.ts";
import { testNodeConfig } from "../support/node-config.ts";

const pool40 = { name: "test-ippool", subnet: "10.6.0.0/16", ips: ["10.6.168.1-10.6.168.40"], gateway: "10.6.0.1" };

test("50 ADDs at once against a 40-address pool: 40 distinct addresses, 10 clean exhaustion errors", async () => {
  const { path: dir, cleanup } = tempDir();
  try {
    const db = join(dir, "berth.db");
    const conf = netconf(dir, { pools: [pool40] });
    // Half are StatefulSet pods (lease + binding), half are not.
    const pods = Array.from({ length: 50 }, (_, i) => (i % 2 ? `web-7d9f5c6b8-x${String.fromCharCode(98 + (i % 20))}k2q` : `race-${i}`));
    const results = await Promise.all(
      pods.map((pod, i) =>
        cniAsync({ command: "ADD", containerId: `race-${i}`, ifname: "eth0", netns: "/x", args: podArgs("default", pod + (i % 2 ? i : "")), stdin: conf }),
      ),
    );
    const ok = results.filter((r) => r.status === 0);
    const failed = results.filter((r) => r.status !== 0);
    assert.is(ok.length, 40);
    assert.is(failed.length, 10);
    const addresses = ok.map((r) => r.json.ips[0].address);
    assert.is(new Set(addresses).size, 40, "distinct");
    for (const f of failed) {
      assert.is(f.json.code, 100, f.stdout);
      assert.is(f.json.msg, "IPv4 pool test-ippool exhausted: 40 of 40 addresses in use");
    }
    assert.is(sql(db, "SELECT * FROM leases").length, 40, "no half-written lease");
    assert.is(sql(db, "PRAGMA integrity_check")[0].integrity_check, "ok");

    await Promise.all(
      pods.map((pod, i) =>
        cniAsync({
          command: "DEL",
          containerId: `race-${i}`,
          ifname: "eth0",
          args: podArgs("default", pod + (i % 2 ? i : "")),
          stdin: { ...conf, ipam: { ...conf.ipam, enableStatefulSet: false } },
        }).then((r) => assert.is(r.status, 0, r.stdout)),
      ),
    );
    assert.is(sql(db, "SELECT * FROM leases").length, 0);
    assert.is(sql(db, "SELECT * FROM bindings").length, 0, "pool empty");
  } finally {
    cleanup();
  }
});

test("ADDs killed with SIGKILL at random points leave no duplicate and nothing the runtime's DEL cannot free", async () => {
  const { path: dir, cleanup } = tempDir();
  try {
    const db = join(dir, "berth.db");
    const conf = netconf(dir, { pools: [pool40] });
    cni({ command: "ADD", containerId: "warm", ifname: "eth0", netns: "/x", stdin: conf }); // database exists
    const stdin = JSON.stringify(conf);
    await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) =>
          new Promise<void>((done) => {
            const child = spawn(BERTH, [], {
              env: {
                CNI_COMMAND: "ADD",
                CNI_CONTAINERID: `kill-${i}`,
                CNI_IFNAME: "eth0",
                CNI_NETNS: "/x",
                CNI_ARGS: podArgs("default", `killed-${i}`),
                BERTH_NODE_CONFIG: testNodeConfig(),
              },
            });
            child.stdout.resume();
            child.stderr.resume();
            child.stdin.end(stdin);
            setTimeout(() => child.kill("SIGKILL"), (i * 7) % 40);
            child.on("close", () => done());
          }),
      ),
    );
    assert.is(sql(db, "PRAGMA integrity_check")[0].integrity_check, "ok");
    const rows = sql<{ address: string; container_id: string }>(db, "SELECT address, container_id FROM leases");
    assert.is(new Set(rows.map((r) => r.address)).size, rows.length, "no address twice");
    assert.is(new Set(rows.map((r) => r.container_id)).size, rows.length, "no attachment twice");
    // A retried ADD of a killed sandbox returns what it holds, or takes exactly one address.
    for (let i = 0; i < 30; i++) {
      const r = cni({ command: "ADD", containerId: `kill-${i}`, ifname: "eth0", netns: "/x", args: podArgs("default", `killed-${i}`), stdin: conf });
      assert.is(r.status, 0, r.stdout);
      const held = sql(db, `SELECT address FROM leases WHERE container_id = 'kill-${i}'`);
      assert.equal(held, [{ address: r.json.ips[0].address.split("/")[0] }]);
    }
    // The runtime's DEL after a failed ADD frees everything.
    for (let i = 0; i < 30; i++) cni({ command: "DEL", containerId: `kill-${i}`, ifname: "eth0", stdin: conf });
    cni({ command: "DEL", containerId: "warm", ifname: "eth0", stdin: conf });
    assert.is(sql(db, "SELECT * FROM leases").length, 0);
  } finally {
    cleanup();
  }
});

test.run();
