/**
 * The plugin's side of IPAMClaim-held addresses (issue 21) on the fake API
 * server: a DEL or an interrupted ADD's undo never frees one; any pod that
 * names the IPAMClaim takes the same claim over.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { clusterAdd } from "../../../plugin/cluster/cluster-add.ts";
import { clusterRelease } from "../../../plugin/cluster/cluster-release.ts";
import { parseNetConf } from "../../../plugin/cni/netconf.ts";
import { createLogger } from "../../../plugin/support/logger.ts";
import { openBetterSqlite3 } from "../../../store/better-sqlite3-driver.ts";
import { LeaseStore } from "../../../store/lease-store.ts";
import { FakeKube } from "../../support/fake-kube.ts";

const log = createLogger("error");
type Ctx = { dir: string; k: FakeKube; store: LeaseStore };
const t = suite<Ctx>("ipamclaim ADD and DEL (fake API server)");
t.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "berth-ipamclaim-"));
  ctx.k = new FakeKube();
  ctx.k.addPool("p", { subnet: "10.9.0.0/16", ips: ["10.9.80.10-10.9.80.12"] });
  ctx.k.ipamClaims.set("vms/vm1.net1", {
    metadata: { name: "vm1.net1", namespace: "vms", uid: "ic-1", resourceVersion: "1" },
    spec: { network: "net", interface: "net1" },
  });
  ctx.store = LeaseStore.open(openBetterSqlite3(join(ctx.dir, "n.db")));
});
t.after.each((ctx) => {
  ctx.store.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

const conf = (dir: string) =>
  parseNetConf(
    JSON.stringify({ cniVersion: "1.0.0", name: "net", type: "macvlan", ipam: { type: "berth", kubeconfig: "/k", nodeName: "node1", dataDir: dir } }),
  );
const networks = JSON.stringify([{ name: "net", interface: "net1", "ipam-claim-reference": "vm1.net1" }]);
const vmPod = (k: FakeKube, name: string) =>
  k.addPod("vms", name, { annotations: { "k8s.v1.cni.cncf.io/networks": networks, "ipam.spidernet.io/ippool": '{"ipv4": ["p"]}' } });

async function add(ctx: Ctx, name: string, containerId: string) {
  const pod = ctx.k.pods.get(`vms/${name}`)!;
  const out = await clusterAdd({
    conf: conf(ctx.dir),
    containerId,
    ifname: "net1",
    pod: { namespace: "vms", name, uid: pod.metadata.uid },
    api: ctx.k,
    store: ctx.store,
    log,
  });
  return (out.ips as { address: string }[])[0].address;
}

const del = (ctx: Ctx, name: string, containerId: string) =>
  clusterRelease(ctx.k, ctx.store, conf(ctx.dir).ipam, { network: "net", containerId, ifname: "net1", pod: { namespace: "vms", name } }, log);

t("every pod naming the IPAMClaim gets its claim; no DEL frees it, the last holder's neither", async (ctx) => {
  vmPod(ctx.k, "virt-launcher-vm1-a");
  const a = await add(ctx, "virt-launcher-vm1-a", "ca");
  const claim = [...ctx.k.claims.values()][0];
  assert.equal(claim.spec.ipamClaim, { name: "vm1.net1", uid: "ic-1" });
  vmPod(ctx.k, "virt-launcher-vm1-b");
  assert.is(await add(ctx, "virt-launcher-vm1-b", "cb"), a);
  assert.is(ctx.k.claims.size, 1);
  ctx.k.pods.delete("vms/virt-launcher-vm1-a");
  await del(ctx, "virt-launcher-vm1-a", "ca");
  ctx.k.pods.delete("vms/virt-launcher-vm1-b");
  await del(ctx, "virt-launcher-vm1-b", "cb");
  assert.is(ctx.k.claims.size, 1, "the claim outlives every pod");
  assert.is([...ctx.k.claims.values()][0].metadata.uid, claim.metadata.uid);
  assert.equal(ctx.k.ipamClaims.get("vms/vm1.net1")!.status?.ownerPod, { name: "virt-launcher-vm1-b" });
});

t("an interrupted ADD's undo leaves an IPAMClaim's claim alone", async (ctx) => {
  vmPod(ctx.k, "virt-launcher-vm1-a");
  const a = (await add(ctx, "virt-launcher-vm1-a", "ca")).split("/")[0];
  const claim = [...ctx.k.claims.values()][0];
  // Pod b's ADD took the claim over (container cb) and was killed before its lease became active.
  vmPod(ctx.k, "virt-launcher-vm1-b");
  claim.spec = { ...claim.spec, podName: "virt-launcher-vm1-b", containerID: "cb" };
  ctx.store.immediate(() => {
    ctx.store.deleteLease(ctx.store.leaseAt("net", a)!.id);
    ctx.store.addLease({
      network: "net",
      address: a,
      family: 4,
      pool: "p",
      container_id: "cb",
      ifname: "net1",
      pod_namespace: "vms",
      pod_name: "virt-launcher-vm1-b",
      pod_uid: null,
      state: "pending",
      prefix: 16,
      gateway: null,
      routes: "[]",
    });
  });
  delete ctx.k.ipamClaims.get("vms/vm1.net1")!.status; // nothing to find it again by, but the claim itself
  assert.is((await add(ctx, "virt-launcher-vm1-b", "cb")).split("/")[0], a);
  assert.is([...ctx.k.claims.values()][0].metadata.uid, claim.metadata.uid, "the same claim, never deleted");
});

t.run();
