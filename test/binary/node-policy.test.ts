/**
 * What a network configuration may make root do on the node: the host paths
 * it names are held to documented prefixes unless the node's own root-owned
 * configuration allows more, and log lines cannot be forged through values
 * that come from CNI_ARGS or the configuration.
 */

import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BERTH, cni, netconf, podArgs, tempDir } from "../support/berth.ts";
import { logEntries } from "../support/log-lines.ts";

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
  ["kubeconfig", "/etc/kubernetes/admin.conf", "/etc/cni/net.d/berth.d/"],
  // Another component's credentials in the CNI configuration directory: not berth's to act with.
  ["kubeconfig", "/etc/cni/net.d/other.kubeconfig", "/etc/cni/net.d/berth.d/"],
  ["kubeconfig", "/etc/cni/net.d/multus.d/multus.kubeconfig", "/etc/cni/net.d/berth.d/"],
  ["kubeconfig", "/etc/cni/net.d/berth.d/../multus.d/multus.kubeconfig", "/etc/cni/net.d/berth.d/"],
  ["dataDir", "/root/.ssh", "/var/lib/cni/"],
] as const) {
  t(`ipam.${field} ${value} (outside ${prefix}) is refused with code 7 naming field and value, and nothing is written`, ({ dir }) => {
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

// A symlink planted where the log file should be (say, by a pod with /var/log mounted) must not make root append to its target.
t("ipam.logFile that is a symlink is refused with code 7 naming field and value; its target stays untouched", ({ dir }) => {
  const env = nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] });
  const target = join(dir, "victim");
  writeFileSync(target, "precious\n");
  const link = join(dir, "berth.log");
  symlinkSync(target, link);
  const r = add(netconf(dir, { logFile: link }), env);
  assert.is(r.status, 1, r.stdout);
  assert.is(r.json.code, 7);
  assert.match(r.json.msg, `invalid ipam.logFile ${JSON.stringify(link)}: is a symbolic link`);
  assert.is(readFileSync(target, "utf8"), "precious\n", "nothing written through the link");
  assert.not.ok(existsSync(join(dir, "berth.db")), "nothing allocated");
  // A dangling link is refused too, and its target is not created.
  const dangling = join(dir, "dangling.log");
  symlinkSync(join(dir, "created-through-link"), dangling);
  const d = add(netconf(dir, { logFile: dangling }), env);
  assert.is(d.json.code, 7, d.stdout);
  assert.not.ok(existsSync(join(dir, "created-through-link")), "no file created through the link");
});

t("ipam.logFile that is a FIFO, a directory or a device is refused with code 7 (and does not hang on a FIFO)", ({ dir }) => {
  const env = nodeConfig(dir, { extraPathPrefixes: [`${dir}/`] });
  const fifo = join(dir, "fifo.log");
  assert.is(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  const device = join(dir, "null.log");
  assert.is(spawnSync("mknod", [device, "c", "1", "3"]).status, 0, "mknod (needs root)");
  const directory = join(dir, "dir.log");
  mkdirSync(directory);
  for (const [path, what] of [
    [fifo, "is not a regular file"],
    [device, "is a device, not a regular file"],
    [directory, "is a directory"],
  ]) {
    const r = add(netconf(dir, { logFile: path }), env);
    assert.is(r.json?.code, 7, `${path}: ${r.stdout}`);
    assert.match(r.json.msg, `invalid ipam.logFile ${JSON.stringify(path)}: ${what}`);
  }
  assert.not.ok(existsSync(join(dir, "berth.db")), "nothing allocated");
  // A regular file (created when missing) is written as before.
  const ok = add(netconf(dir, { logFile: join(dir, "ok.log") }), env);
  assert.is(ok.status, 0, ok.stdout);
  assert.ok(statSync(join(dir, "ok.log")).isFile());
  assert.match(readFileSync(join(dir, "ok.log"), "utf8"), '"msg":"address assigned"');
});

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
