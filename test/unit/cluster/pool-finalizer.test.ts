/** The first ADD puts the pool finalizer on before it writes a claim (plugin/cluster/pool-finalizer.ts). */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { withPoolFinalizer } from "../../../plugin/cluster/pool-finalizer.ts";
import { IpamError } from "../../../plugin/ipam/ipam-error.ts";
import { POOL_FINALIZER } from "../../../plugin/kube/crd.ts";
import type { ClaimObject, PoolObject } from "../../../plugin/kube/kube-api.ts";
import { KubeUnreachableError } from "../../../plugin/kube/kube-errors.ts";
import { createLogger } from "../../../plugin/support/logger.ts";
import { FakeKube } from "../../support/fake-kube.ts";

const log = createLogger("error");
const claim = (address: string, pool = "p"): ClaimObject => ({
  metadata: { name: `v4-${address.replace(/\./g, "-")}` },
  spec: {
    address,
    ipVersion: 4,
    pool,
    podNamespace: "ns",
    podName: "pod",
    podUID: "u",
    containerID: "c",
    interface: "eth0",
    node: "n",
    claimedAt: new Date().toISOString(),
  },
});

function setup() {
  const k = new FakeKube();
  k.addPool("p", { subnet: "10.1.0.0/24" });
  return k;
}

test("a claim is written only after its pool has the finalizer; once per pool", async () => {
  const k = setup();
  const api = withPoolFinalizer(k, log);
  await api.getPool("p");
  await api.createClaim(claim("10.1.0.1"));
  assert.equal(k.pools.get("p")!.metadata.finalizers, [POOL_FINALIZER]);
  const order = k.calls.filter((c) => c.startsWith("addPoolFinalizer") || c.startsWith("createClaim"));
  assert.equal(order, ["addPoolFinalizer p"]);
  await api.createClaim(claim("10.1.0.2"));
  await api.updateClaim({ ...k.claims.get("v4-10-1-0-2")! });
  assert.is(k.calls.filter((c) => c.startsWith("addPoolFinalizer")).length, 1, "one write per pool");
  const other = withPoolFinalizer(k, log);
  await other.listPools();
  await other.createClaim(claim("10.1.0.3"));
  assert.is(k.calls.filter((c) => c.startsWith("addPoolFinalizer")).length, 1, "a pool read with the finalizer on costs no write");
});

test("two ADDs at once: the loser's conditional write conflicts, it reads the pool again and finds the entry; never two", async () => {
  const k = setup();
  const a = withPoolFinalizer(k, log);
  const b = withPoolFinalizer(k, log);
  await a.getPool("p");
  await b.getPool("p"); // both read the pool without the finalizer
  await a.createClaim(claim("10.1.0.1"));
  await b.createClaim(claim("10.1.0.2"));
  assert.equal(k.pools.get("p")!.metadata.finalizers, [POOL_FINALIZER]);
  assert.is(k.claims.size, 2);
});

test("a lost answer to the write: read back, found, the claim goes ahead", async () => {
  const k = setup();
  const real = k.addPoolFinalizer.bind(k);
  let lost = 0;
  k.addPoolFinalizer = async (pool: PoolObject) => {
    await real(pool);
    if (lost++ === 0) throw new KubeUnreachableError(k.server, "connection reset after the write");
  };
  const api = withPoolFinalizer(k, log);
  await api.getPool("p");
  await api.createClaim(claim("10.1.0.1"));
  assert.equal(k.pools.get("p")!.metadata.finalizers, [POOL_FINALIZER]);
  assert.is(lost, 1, "written once");
  assert.is(k.claims.size, 1);
});

test("a write that never lands: the ADD fails before any claim exists", async () => {
  const k = setup();
  k.addPoolFinalizer = async () => {
    throw new KubeUnreachableError(k.server, "unreachable");
  };
  const api = withPoolFinalizer(k, log);
  await api.getPool("p");
  try {
    await api.createClaim(claim("10.1.0.1"));
    assert.unreachable("must fail");
  } catch (err) {
    assert.instance(err, KubeUnreachableError);
  }
  assert.is(k.claims.size, 0, "no claim without the finalizer");
});

test("a pool being deleted without berth's finalizer takes no new claim; a bound member's claim may still be re-taken", async () => {
  const k = setup();
  const pool = k.pools.get("p")!;
  pool.metadata.deletionTimestamp = new Date().toISOString();
  pool.metadata.finalizers = ["someone.else/keep"];
  const api = withPoolFinalizer(k, log);
  await api.getPool("p");
  try {
    await api.createClaim(claim("10.1.0.1"));
    assert.unreachable("must fail");
  } catch (err) {
    assert.instance(err, IpamError);
    assert.is((err as IpamError).kind, "try-again");
    assert.match((err as Error).message, "being deleted");
  }
  k.claims.set("v4-10-1-0-2", { ...claim("10.1.0.2"), metadata: { name: "v4-10-1-0-2", resourceVersion: "1", uid: "x" } });
  await api.updateClaim(k.claims.get("v4-10-1-0-2")!);
  assert.is(k.calls.filter((c) => c.startsWith("addPoolFinalizer")).length, 0, "no write the API server would refuse");
});

test("a pool deleted under the ADD: try again", async () => {
  const k = setup();
  const api = withPoolFinalizer(k, log);
  await api.getPool("p");
  k.pools.delete("p");
  try {
    await api.createClaim(claim("10.1.0.1"));
    assert.unreachable("must fail");
  } catch (err) {
    assert.instance(err, IpamError);
    assert.is((err as IpamError).kind, "try-again");
  }
});

test.run();
