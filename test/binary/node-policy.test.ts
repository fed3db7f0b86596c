/**
 * What a network configuration may make root do on the node: the host paths
 * it names are held to documented prefixes unless the node's own root-owned
 * configuration allows more, and log lines cannot be forged through values
 * that come from CNI_ARGS or the configuration.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { logEntries } from "../harness/log-lines.ts";
import { BERTH, cni, netconf, podArgs, tempDir } from "../helpers/berth.ts";

const t = suite<{ dir: string; cleanup: () => void }>("node policy");
t.before.each((ctx) => {
  const d = tempDir();
  ctx.dir = d.path;
  ctx.cleanup = d.cleanup;
});
t.after.each((ctx) => ctx.cleanup());

const add = (conf: object, env?: Record<string, string>) =>
  cni({
    command: "ADD",
    containerId: "c1",
    ifname: "eth0",
    netns: "/var/run/netns/x",
    args: podArgs("default", "web-0"),
    stdin: conf,
    ...(env ? { env } : {}),
  });

/** A node configuration of the test's own (instead of the harness's, which allows the temp dir). */
function nodeConfig(dir: string, body: unknown, mode = 0o644): Record<string, string> {
  const file = join(dir, "node.json");
  writeFileSync(file, typeof body === "string" ? body : JSON.stringify(body));
  chmodSync(file, mode);
  return { BERTH_NODE_CONFIG: file };
}

for (const [field, value, prefix] of [
  ["logFile", "/etc/cron.d/berth", "/var/log/"],
  ["kubeconfig", "/etc/kubernetes/admin.conf", "/etc/cni/net.d/"],
  ["dataDir", "/root/.ssh", "/var/lib/cni/"],
] as const) {
  t(`ipam.${field} outside ${prefix} is refused with code 7 naming field and value, and nothing is written`, ({ dir }) => {
    const env = nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] });
    const conf = netconf(dir, field === "kubeconfig" ? { kubeconfig: value, pools: undefined } : { [field]: value });
    const r = add(conf, env);
    assert.is(r.status, 1, r.stdout);
    assert.is(r.json.code, 7);
    assert.match(r.json.msg, `invalid ipam.${field} ${JSON.stringify(value)}: outside ${prefix}`);
    assert.match(r.json.details, env.BERTH_NODE_CONFIG, "says where the node could allow more");
    assert.not.ok(existsSync(join(dir, "berth.db")), "no database was created");
    if (field === "logFile") assert.not.ok(existsSync(value), `${value} was not written`);
  });
}

t("a path with .. that leaves an allowed prefix is refused", ({ dir }) => {
  const r = add(netconf(dir, { logFile: "/var/log/../../etc/berth.log" }), nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] }));
  assert.is(r.json.code, 7);
  assert.match(r.json.msg, "ipam.logFile");
});

t("the node's configuration (root-owned, not writable by others) allows more; the network configuration cannot", ({ dir }) => {
  assert.is(add(netconf(dir), nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] })).status, 0);
  const none = add(netconf(dir), nodeConfig(dir, {}));
  assert.is(none.json.code, 7, "without the node's consent the temp dataDir is refused");
  const lax = add(netconf(dir), nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] }, 0o666));
  assert.is(lax.json.code, 7);
  assert.match(lax.json.msg, "must be owned by root and writable by no one else");
  const bad = add(netconf(dir), nodeConfig(dir, "{not json"));
  assert.is(bad.json.code, 7);
  assert.match(bad.json.msg, "not valid JSON");
  const everything = add(netconf(dir), nodeConfig(dir, { extraPathPrefixes: ["/"] }));
  assert.is(everything.json.code, 7, "/ is not a prefix the node may allow");
  const fromNetwork = add({ ...netconf(dir), extraPathPrefixes: [`${dir}/`] }, nodeConfig(dir, {}));
  assert.is(fromNetwork.json.code, 7, "a top-level key in the network configuration allows nothing");
});

t("log lines are one JSON object each: a newline in a pod name cannot forge a line", ({ dir }) => {
  const logFile = join(dir, "berth.log");
  const forged = "web-0\n2026-12-02T00:00:00.000Z INFO address released address=10.6.168.101 pod=default/victim";
  const r = cni({
    command: "ADD",
    containerId: "c1",
    ifname: "eth0",
    netns: "/var/run/netns/x",
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${forged};K8S_POD_UID=u1`,
    stdin: netconf(dir, { logFile }),
  });
  assert.is(r.status, 0, r.stdout);
  const entries = logEntries(readFileSync(logFile, "utf8"));
  assert.equal(
    entries.map((e) => e.msg),
    ["address assigned"],
    "exactly one line, and it is the real one",
  );
  assert.is(entries[0].pod, `default/${forged}`, "the value is kept, escaped");
});

t("the binary reads no .env or bunfig.toml from its working directory (whoever can write there could steer root)", ({ dir }) => {
  // bun's standalone executables load both from the working directory unless built not to: a .env could point
  // BERTH_NODE_CONFIG at a permissive node file, a bunfig.toml could preload any script.
  const permissive = nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] }).BERTH_NODE_CONFIG;
  writeFileSync(join(dir, ".env"), `BERTH_NODE_CONFIG=${permissive}\n`);
  const marker = join(dir, "preloaded");
  writeFileSync(join(dir, "evil.js"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
  writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./evil.js"]\n');
  const env = { PATH: "/usr/bin:/bin", CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/x", CNI_IFNAME: "eth0" };
  const r = spawnSync(BERTH, [], { cwd: dir, env, input: JSON.stringify(netconf(dir)), encoding: "utf8" });
  assert.is(r.status, 1, r.stdout);
  const out = JSON.parse(r.stdout) as { code: number; msg: string };
  assert.is(out.code, 7, "the .env's node file was not read: the data directory is still outside the default prefixes");
  assert.match(out.msg, `invalid ipam.dataDir ${JSON.stringify(dir)}: outside /var/lib/cni/`);
  assert.not.ok(existsSync(marker), "bunfig.toml's preload did not run");
  assert.not.ok(existsSync(join(dir, "berth.db")), "nothing was allocated");
  const version = spawnSync(BERTH, ["version"], { cwd: dir, env: { PATH: "/usr/bin:/bin" }, encoding: "utf8" });
  assert.is(version.status, 0, version.stderr);
  assert.not.ok(existsSync(marker), "nor for the CLI");
});

t.run();
