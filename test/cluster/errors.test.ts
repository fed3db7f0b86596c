/**
 * Cluster-mode errors, through dist/berth directly: each failing ADD prints
 * one CNI error (stdout is one JSON document, non-zero exit) with the code
 * and a message naming what is wrong, and leaves nothing behind: no
 * BerthIPClaim, no BerthEndpoint, no pool count change, and (after the
 * kubelet's DEL that follows a failed ADD) no lease on the node.
 *
 * Also the plugin's identity: a role without `create` on berthipclaims makes
 * ADD fail with 109, and the shipped role cannot delete pods or write pool
 * specs (kubectl auth can-i).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster errors.test.ts
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cli, type Outcome } from "../support/berth.ts";
import {
  admin,
  apply,
  bindPod,
  ClusterScope,
  claimOf,
  claimsOfPool,
  createNamespace,
  endpointsIn,
  kubectl,
  listClaims,
  listPools,
  PLUGIN_KUBECONFIG,
  path,
  podArgs,
  podUid,
  poolManifest,
  type SimNode,
  waitFor,
} from "../support/cluster/cluster-env.ts";

const NS = "berth-errs";
const P = {
  ok: "errs-ok",
  bad: "errs-bad",
  off: "errs-off",
  node2: "errs-node2",
  one: "errs-one",
} as const;
const ALL_POOLS = Object.values(P);
const LIMITED = "berth-errs-limited";
const PLUGIN_SA = "system:serviceaccount:kube-system:berth";

const S = suite("cluster: errors");

let scope: ClusterScope;
let node1: SimNode;
let node2: SimNode;

S.before(async () => {
  scope = new ClusterScope({ tag: "errs", namespaces: [NS], pools: [...ALL_POOLS] });
  try {
    await scope.removeStale();
    removeLimitedRole();
    await createNamespace(NS);
    node1 = scope.node("node1");
    node2 = scope.node("node2");
    apply(poolManifest(P.ok, { subnet: "10.6.0.0/16", ips: ["10.6.172.1-10.6.172.10"] }));
    // ips outside the subnet: the CRD's schema accepts it, berth must refuse it.
    apply(poolManifest(P.bad, { subnet: "10.6.0.0/16", ips: ["10.7.172.1-10.7.172.5"] }));
    apply(poolManifest(P.off, { subnet: "10.6.0.0/16", ips: ["10.6.172.21-10.6.172.25"], disable: true }));
    apply(poolManifest(P.node2, { subnet: "10.6.0.0/16", ips: ["10.6.172.31-10.6.172.35"], nodeName: ["node2"] }));
    apply(poolManifest(P.one, { subnet: "10.6.0.0/16", ips: ["10.6.172.41"] }));
  } catch (err) {
    scope.cleanup();
    throw err;
  }
});

S.after(() => {
  removeLimitedRole();
  scope.cleanup();
});

/** Deletes this file's ClusterRoleBinding and ClusterRole, if there. */
function removeLimitedRole(): void {
  admin.sync.delete(path("clusterrolebindings", { name: LIMITED }));
  admin.sync.delete(path("clusterroles", { name: LIMITED }));
}

/** Prints the nodes' berth logs when a test fails. */
function withLogs(fn: () => void | Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (err) {
      console.error(`\n[errs] test failed; berth logs:\n${scope.logTail(undefined, 20)}\n`);
      throw err;
    }
  };
}

let podCounter = 0;

/** A plain pod (optionally annotated), bound to `node`; returns its name and UID. */
function makePod(annotations: Record<string, string>, node = "node1", prefix = "errs"): { name: string; uid: string } {
  const name = `${prefix}-${++podCounter}`;
  apply(
    JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: NS, annotations }, spec: { containers: [{ name: "app", image: "nginx" }] } }),
  );
  bindPod(NS, name, node);
  return { name, uid: podUid(NS, name) };
}

const ippool = (v4: string[], v6?: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify(v6 ? { ipv4: v4, ipv6: v6 } : { ipv4: v4 }) });

/** What an operator would see of this file's allocations: claims of its pods, its endpoints, its pools' status. */
function snapshot(): string {
  const items: any[] = [...listClaims(), ...endpointsIn(NS), ...listPools()];
  return JSON.stringify(
    {
      claims: items
        .filter((o) => o.kind === "BerthIPClaim" && o.spec.podNamespace === NS)
        .map((c) => `${c.metadata.name}=${c.spec.podName}/${c.spec.podUID}`)
        .sort(),
      endpoints: items
        .filter((o) => o.kind === "BerthEndpoint")
        .map((e) => `${e.metadata.name}=${JSON.stringify(e.spec.ips)}`)
        .sort(),
      pools: items
        .filter((o) => o.kind === "SpiderIPPool" && (ALL_POOLS as readonly string[]).includes(o.metadata.name))
        .map((p) => `${p.metadata.name}=${JSON.stringify(p.status ?? {})}`)
        .sort(),
    },
    null,
    1,
  );
}

function leasesOn(node: SimNode, containerId: string): unknown[] {
  const r = cli(["inspect", "leases", "--db", join(node.dataDir, "berth.db"), "-o", "json"]);
  if (r.status !== 0 && /no such|does not exist|not found/i.test(r.stderr)) return [];
  assert.is(r.status, 0, `berth inspect leases on ${node.name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { container_id: string }[]).filter((l) => l.container_id === containerId);
}

interface Expect {
  code: number;
  /** Each must appear in msg. */
  mentions: (string | RegExp)[];
  /** Run the kubelet's DEL afterwards and check no lease is left (default true). */
  del?: boolean;
}

/** Asserts a failed ADD: one JSON error document with the code, naming things; nothing changed. */
function assertFailed(o: Outcome, before: string, e: Expect, what: string): void {
  assert.is.not(o.status, 0, `${what}: ADD must fail: ${o.stdout}`);
  assert.ok(o.json, `${what}: stdout is one JSON document: ${JSON.stringify(o.stdout)}`);
  assert.is(o.json.code, e.code, `${what}: code ${e.code} expected: ${JSON.stringify(o.json)}`);
  assert.type(o.json.msg, "string");
  for (const m of e.mentions) {
    if (typeof m === "string") assert.ok(o.json.msg.includes(m), `${what}: message names ${JSON.stringify(m)}: ${o.json.msg}`);
    else assert.match(o.json.msg, m, `${what}: message matches ${m}: ${o.json.msg}`);
  }
  assert.is(o.json.cniVersion, "1.0.0");
  assert.is(snapshot(), before, `${what}: no claim, endpoint or count changed`);
}

/** ADD for pod (name, uid) on node1 that must fail as `e` says; then the kubelet's DEL. */
async function expectAddFails(
  what: string,
  pod: { name: string; uid: string },
  e: Expect,
  opts: { node?: SimNode; ipamExtra?: Record<string, unknown> } = {},
): Promise<Outcome> {
  const node = opts.node ?? node1;
  const containerId = randomBytes(32).toString("hex");
  const before = snapshot();
  const o = await scope.berthAsync("ADD", node, { containerId, args: podArgs(NS, pod.name, pod.uid), ipamExtra: opts.ipamExtra });
  assertFailed(o, before, e, what);
  if (e.del ?? true) {
    const d = await scope.berthAsync("DEL", node, { containerId, args: podArgs(NS, pod.name, pod.uid), ipamExtra: opts.ipamExtra });
    assert.is(d.status, 0, `${what}: the kubelet's DEL after the failed ADD succeeds: ${d.stdout} ${d.stderr}`);
    assert.is(snapshot(), before, `${what}: DEL changed nothing`);
  }
  assert.equal(leasesOn(node, containerId), [], `${what}: no lease left on ${node.name}`);
  return o;
}

/** A copy of PLUGIN_KUBECONFIG with the server and/or token replaced. */
function kubeconfigCopy(name: string, change: { server?: string; token?: string; user?: string }): string {
  let text = readFileSync(PLUGIN_KUBECONFIG, "utf8");
  if (change.server) text = text.replace(/server: \S+/, `server: ${change.server}`);
  if (change.token) text = text.replace(/token: \S+/, `token: ${change.token}`);
  if (change.user) text = text.replaceAll(PLUGIN_SA, change.user);
  const file = join(scope.tempDir("kubeconfig"), name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

function listen(server: Server): Promise<number> {
  return new Promise((done, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => done((server.address() as { port: number }).port));
  });
}

// ---------------------------------------------------------------- API server

S(
  "unreachable API server (nothing listens on the port): 11 naming the server",
  withLogs(async () => {
    const probe = createServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r)); // free again: connections are refused
    const server = `https://127.0.0.1:${port}`;
    const kubeconfig = kubeconfigCopy("unreachable", { server });
    const pod = makePod(ippool([P.ok]));
    const o = await expectAddFails("unreachable", pod, { code: 11, mentions: [server], del: false }, { ipamExtra: { kubeconfig } });
    assert.match(o.json.msg, /unreachable|ECONNREFUSED|refused/i, o.json.msg);
  }),
);

S(
  "API server that accepts but never answers: 11 naming the server, within timeoutSeconds",
  withLogs(async () => {
    const sockets = new Set<import("node:net").Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    const port = await listen(silent);
    try {
      const server = `https://127.0.0.1:${port}`;
      const kubeconfig = kubeconfigCopy("silent", { server });
      const pod = makePod(ippool([P.ok]));
      const started = Date.now();
      await expectAddFails("silent", pod, { code: 11, mentions: [server], del: false }, { ipamExtra: { kubeconfig, timeoutSeconds: 2 } });
      const ms = Date.now() - started;
      assert.ok(ms < 8000, `gave up in ${ms} ms with timeoutSeconds 2`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  }),
);

// ---------------------------------------------------------------- pods, pools, annotations

S(
  "pod not found: 106 naming the pod",
  withLogs(async () => {
    await expectAddFails("no pod", { name: "errs-no-such-pod", uid: randomUUID() }, { code: 106, mentions: [`${NS}/errs-no-such-pod`, /not found/] });
  }),
);

S(
  "pod UID in CNI_ARGS is not the pod's (deleted and recreated meanwhile): 106 naming the pod",
  withLogs(async () => {
    const pod = makePod(ippool([P.ok]));
    const stale = randomUUID();
    await expectAddFails("stale uid", { name: pod.name, uid: stale }, { code: 106, mentions: [`${NS}/${pod.name}`, stale] });
  }),
);

S(
  "SpiderIPPool named by the annotation does not exist: 106 naming the pool",
  withLogs(async () => {
    const pod = makePod(ippool(["errs-missing-pool"]));
    await expectAddFails("missing pool", pod, { code: 106, mentions: ["errs-missing-pool", /not found/] });
  }),
);

S(
  "annotation that is not JSON: 107 naming the annotation and the pod",
  withLogs(async () => {
    const pod = makePod({ "ipam.spidernet.io/ippool": '{"ipv4": [errs-ok' });
    await expectAddFails("bad json", pod, { code: 107, mentions: ["ipam.spidernet.io/ippool", `${NS}/${pod.name}`] });
    const listPod = makePod({ "ipam.spidernet.io/ippools": '{"interface": "eth0", "ipv4": ["errs-ok"]}' });
    await expectAddFails("ippools not a list", listPod, { code: 107, mentions: ["ipam.spidernet.io/ippools", `${NS}/${listPod.name}`] });
  }),
);

S(
  "invalid SpiderIPPool spec (ips outside the subnet): 108 naming the pool and the field",
  withLogs(async () => {
    const pod = makePod(ippool([P.bad]));
    await expectAddFails("invalid pool", pod, { code: 108, mentions: [P.bad, "ips", /10\.6\.0\.0\/16/] });
  }),
);

S(
  "no candidate pool: a disabled pool, and a pool for other nodes, give 101 naming the pool and why",
  withLogs(async () => {
    const off = makePod(ippool([P.off]));
    await expectAddFails("disabled", off, { code: 101, mentions: [P.off, /disabled/] });
    const elsewhere = makePod(ippool([P.node2]));
    await expectAddFails("nodeName", elsewhere, { code: 101, mentions: [P.node2, "node2", "node1"] });

    // The same pool does serve a pod on node2: the refusal is about the node, not the pool.
    const here = makePod(ippool([P.node2]), "node2");
    const containerId = randomBytes(32).toString("hex");
    const ok = await scope.berthAsync("ADD", node2, { containerId, args: podArgs(NS, here.name, here.uid) });
    assert.is(ok.status, 0, `ADD on node2: ${ok.stdout} ${ok.stderr}`);
    assert.match(ok.json.ips[0].address, /^10\.6\.172\.3[1-5]\/16$/);
    const del = await scope.berthAsync("DEL", node2, { containerId, args: podArgs(NS, here.name, here.uid) });
    assert.is(del.status, 0);
  }),
);

S(
  "pools in the ipam block are rejected in cluster mode: 7 naming ipam.pools",
  withLogs(async () => {
    const pod = makePod(ippool([P.ok]));
    const before = snapshot();
    const o = scope.berth("ADD", node1, {
      containerId: randomBytes(8).toString("hex"),
      args: podArgs(NS, pod.name, pod.uid),
      ipamExtra: { pools: [{ name: "local", subnet: "10.6.0.0/16" }] },
    });
    assertFailed(o, before, { code: 7, mentions: ["ipam.pools"] }, "pools in cluster mode");
  }),
);

S(
  "exhausted pool: 100 naming the pool and its counts; the failed ADD takes nothing",
  withLogs(async () => {
    const first = makePod(ippool([P.one]));
    const containerId = randomBytes(32).toString("hex");
    const ok = await scope.berthAsync("ADD", node1, { containerId, args: podArgs(NS, first.name, first.uid) });
    assert.is(ok.status, 0, `first ADD: ${ok.stdout}`);
    assert.is(ok.json.ips[0].address, "10.6.172.41/16");
    assert.is(claimsOfPool(P.one).length, 1, `${P.one} holds one claim`);

    const second = makePod(ippool([P.one]));
    const o = await expectAddFails("exhausted", second, { code: 100, mentions: [P.one, /exhausted/, /1 of 1/] });
    assert.match(o.json.details ?? "", new RegExp(second.name), `details name the pod: ${JSON.stringify(o.json)}`);
    assert.is(claimOf("10.6.172.41")?.spec.podName, first.name, "the address stays with the first pod");

    const del = await scope.berthAsync("DEL", node1, { containerId, args: podArgs(NS, first.name, first.uid) });
    assert.is(del.status, 0);
  }),
);

// ---------------------------------------------------------------- RBAC

S(
  "least privilege: a role without create on berthipclaims makes ADD fail with 109 naming the verb and resource, leaving nothing",
  withLogs(async () => {
    // The shipped role, minus `create` on berthipclaims, bound to a new ServiceAccount.
    const shipped = admin.sync.must("GET", path("clusterroles", { name: "berth-plugin" }));
    const rules = (shipped.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[]).map((r) =>
      r.resources.includes("berthipclaims") ? { ...r, verbs: r.verbs.filter((v) => v !== "create") } : r,
    );
    assert.ok(
      rules.some((r) => r.resources.includes("berthipclaims") && !r.verbs.includes("create") && r.verbs.includes("get")),
      "the rule was found and changed",
    );
    apply(
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: LIMITED, namespace: NS } },
          { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: LIMITED }, rules },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: LIMITED },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: LIMITED },
            subjects: [{ kind: "ServiceAccount", name: LIMITED, namespace: NS }],
          },
        ],
      }),
    );
    const user = `system:serviceaccount:${NS}:${LIMITED}`;
    const secret = await waitFor<string>(
      `a token secret for ServiceAccount ${NS}/${LIMITED}`,
      () => admin.sync.get(path("serviceaccounts", { ns: NS, name: LIMITED }))?.secrets?.[0]?.name,
      30_000,
    );
    const token = await waitFor<string>(`the token of secret ${secret}`, () => admin.sync.get(path("secrets", { ns: NS, name: secret }))?.data?.token, 30_000);
    const kubeconfig = kubeconfigCopy("limited", { token: Buffer.from(token, "base64").toString("utf8"), user });
    // RBAC is in force for that identity before berth runs.
    await waitFor(
      "RBAC to deny create berthipclaims",
      () => kubectl(["auth", "can-i", "create", "berthipclaims.ipam.berth.dev", "--as", user]).stdout.trim() === "no",
      10_000,
    );
    assert.is(kubectl(["auth", "can-i", "get", "berthipclaims.ipam.berth.dev", "--as", user]).stdout.trim(), "yes");

    const pod = makePod(ippool([P.ok]));
    const o = await expectAddFails("forbidden create", pod, { code: 109, mentions: ["create", "berthipclaims", /forbidden/i] }, { ipamExtra: { kubeconfig } });
    assert.ok(o.json.msg.includes(user), `the message names the identity that was refused: ${o.json.msg}`);

    // The same pod with the shipped role: allocated (the refusal was the missing verb, nothing else).
    const containerId = randomBytes(32).toString("hex");
    const ok = await scope.berthAsync("ADD", node1, { containerId, args: podArgs(NS, pod.name, pod.uid) });
    assert.is(ok.status, 0, `ADD with the shipped role: ${ok.stdout} ${ok.stderr}`);
    const del = await scope.berthAsync("DEL", node1, { containerId, args: podArgs(NS, pod.name, pod.uid) });
    assert.is(del.status, 0);
  }),
);

S(
  "the shipped role grants what berth needs and nothing more (kubectl auth can-i as the plugin's ServiceAccount)",
  withLogs(() => {
    const can = (verb: string, resource: string, extra: string[] = []) => {
      const r = kubectl(["auth", "can-i", verb, resource, "--as", PLUGIN_SA, ...extra]);
      return r.stdout.trim();
    };
    const denied: [string, string, string[]?][] = [
      ["delete", "pods"],
      ["create", "pods"],
      ["update", "pods"],
      ["patch", "pods"],
      ["list", "pods"],
      ["update", "spiderippools.spiderpool.spidernet.io"],
      ["create", "spiderippools.spiderpool.spidernet.io"],
      ["delete", "spiderippools.spiderpool.spidernet.io"],
      ["update", "statefulsets.apps"],
      // Pool counts are the controller's alone: no plugin has written them since 0.4.
      ["patch", "spiderippools.spiderpool.spidernet.io", ["--subresource", "status"]],
      ["get", "secrets"],
      ["list", "secrets", ["-n", "kube-system"]],
    ];
    for (const [verb, resource, extra] of denied) assert.is(can(verb, resource, extra), "no", `${PLUGIN_SA} must not ${verb} ${resource}`);
    const granted: [string, string, string[]?][] = [
      ["get", "pods"],
      ["get", "statefulsets.apps"],
      ["get", "spiderippools.spiderpool.spidernet.io"],
      ["list", "spiderippools.spiderpool.spidernet.io"],
      // The pool finalizer, added by the first ADD into a pool without it (RBAC cannot narrow a patch to it).
      ["patch", "spiderippools.spiderpool.spidernet.io"],
      ["create", "berthipclaims.ipam.berth.dev"],
      ["delete", "berthipclaims.ipam.berth.dev"],
      ["create", "berthendpoints.ipam.berth.dev"],
    ];
    for (const [verb, resource, extra] of granted) assert.is(can(verb, resource, extra), "yes", `${PLUGIN_SA} needs ${verb} ${resource}`);
    // And berth really runs with that identity in these tests (not the admin one).
    const config = readFileSync(PLUGIN_KUBECONFIG, "utf8");
    assert.ok(config.includes(PLUGIN_SA), `${PLUGIN_KUBECONFIG} is the plugin's ServiceAccount`);
    assert.is(scope.ipam(node1).kubeconfig, PLUGIN_KUBECONFIG);
  }),
);

S.run();
