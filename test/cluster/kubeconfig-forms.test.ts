/**
 * The kubeconfig forms the plugin reads, through dist/berth on the real API
 * server: what `berth install` writes, a token file (read again for every
 * request, so a rotated token is used at once) and an exec credential plugin
 * (left to @kubernetes/client-node, loaded for it: the binary's fallback
 * entry point). Each form serves a whole ADD and DEL.
 *
 * Address range: 10.6.183.1-10 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster kubeconfig-forms.test.ts
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { renderKubeconfig } from "../../plugin/install/kubeconfig.ts";
import type { Outcome } from "../support/berth.ts";
import {
  apply,
  bindPod,
  ClusterScope,
  claimOf,
  createNamespace,
  deletePod,
  PLUGIN_KUBECONFIG,
  podArgs,
  podUid,
  poolManifest,
  type SimNode,
} from "../support/cluster/cluster-env.ts";

const NS = "berth-kcf";
const POOL = "kcf-pool";
const S = suite("cluster: kubeconfig forms");

let scope: ClusterScope;
let node1: SimNode;
let token: string;
let caPath: string;
let server: string;

S.before(async () => {
  scope = new ClusterScope({ tag: "kcf", namespaces: [NS], pools: [POOL] });
  try {
    await scope.removeStale();
    await createNamespace(NS);
    node1 = scope.node("node1");
    apply(poolManifest(POOL, { subnet: "10.6.0.0/16", ips: ["10.6.183.1-10.6.183.10"] }));
    const kc = readFileSync(PLUGIN_KUBECONFIG, "utf8");
    token = /^\s*token: (\S+)$/m.exec(kc)![1];
    caPath = /^\s*certificate-authority: (\S+)$/m.exec(kc)![1];
    server = /^\s*server: (\S+)$/m.exec(kc)![1];
  } catch (err) {
    scope.cleanup();
    throw err;
  }
});

S.after(() => scope.cleanup());

let podCounter = 0;
let cidCounter = 0;

/** A kubeconfig for the test API server with `user` lines, written into a fresh temp dir. */
function kubeconfig(dir: string, user: string[]): string {
  const file = join(dir, "kubeconfig");
  const text = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: testenv",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority: ${caPath}`,
    "users:",
    "- name: berth",
    "  user:",
    ...user.map((l) => `    ${l}`),
    "contexts:",
    "- name: testenv",
    "  context: {cluster: testenv, user: berth}",
    "current-context: testenv",
    "",
  ].join("\n");
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** A fresh pod on node1 ADDed with `kubeconfig`, then deleted and DELed with it; the outcomes and the address. */
function cycle(kubeconfigPath: string): { add: Outcome; del: Outcome; address?: string } {
  const name = `kcf-${++podCounter}`;
  apply(
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: NS, annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [POOL] }) } },
      spec: { containers: [{ name: "app", image: "nginx" }] },
    }),
  );
  bindPod(NS, name, "node1");
  const inv = { containerId: `kcf-${++cidCounter}`, args: podArgs(NS, name, podUid(NS, name)), ipamExtra: { kubeconfig: kubeconfigPath } };
  const add = scope.berth("ADD", node1, inv);
  const address = add.json?.ips?.[0]?.address?.split("/")[0];
  deletePod(NS, name);
  const del = scope.berth("DEL", node1, inv);
  return { add, del, address };
}

/** ADD got an address from the pool, and DEL of the deleted pod released it. */
function servedAndReleased(what: string, r: ReturnType<typeof cycle>): void {
  assert.is(r.add.status, 0, `${what}: ADD ${r.add.stdout} ${r.add.stderr}`);
  assert.match(r.address ?? "", /^10\.6\.183\./, `${what}: address from the pool`);
  assert.is(r.del.status, 0, `${what}: DEL ${r.del.stdout} ${r.del.stderr}`);
  assert.is(claimOf(r.address!), undefined, `${what}: DEL released the claim`);
}

S("what `berth install` writes (CA and token embedded) serves ADD and DEL", () => {
  const file = join(scope.tempDir("install"), "berth.kubeconfig");
  writeFileSync(file, renderKubeconfig({ server, caPem: readFileSync(caPath, "utf8"), token }), { mode: 0o600 });
  servedAndReleased("install kubeconfig", cycle(file));
});

S("a token file is read for every command: a rotated token is used at once, a revoked one refused", () => {
  const dir = scope.tempDir("token-file");
  writeFileSync(join(dir, "token"), `${token}\n`, { mode: 0o600 });
  const file = kubeconfig(dir, ["token-file: token"]); // relative: to the kubeconfig's directory
  servedAndReleased("token file", cycle(file));
  writeFileSync(join(dir, "token"), "not-a-valid-token\n");
  const refused = cycle(file);
  assert.is(refused.add.json?.code, 109, `unauthorized: ${refused.add.stdout}`);
  assert.match(refused.add.json.msg, "401");
  writeFileSync(join(dir, "token"), token);
  servedAndReleased("token file rotated back", cycle(file));
});

S("an exec credential plugin works: the kubeconfig is left to client-node, loaded for it", () => {
  const dir = scope.tempDir("exec");
  const marker = join(dir, "ran");
  const plugin = join(dir, "credential-plugin.sh");
  const credential = JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1beta1", kind: "ExecCredential", status: { token } });
  writeFileSync(plugin, `#!/bin/sh\ntouch '${marker}'\nprintf '%s' '${credential}'\n`, { mode: 0o700 });
  chmodSync(plugin, 0o700);
  const file = kubeconfig(dir, ["exec:", "  apiVersion: client.authentication.k8s.io/v1beta1", `  command: ${plugin}`]);
  servedAndReleased("exec plugin", cycle(file));
  assert.ok(existsSync(marker), "the credential plugin ran");
});

S.run();
