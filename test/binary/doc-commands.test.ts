/**
 * The documentation's local-mode commands, read from the pages and run as an
 * operator types them (test/support/docs/doc-blocks.ts): `berth inspect`, `berth
 * release` and `sqlite3` against a database that local ADDs made, and the
 * hand install into the CNI bin directory. Their host paths
 * (/var/lib/cni/berth, /opt/cni/bin) are test directories in a private mount
 * namespace (test/support/docs/doc-shell.ts); needs root.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BERTH, cni, podArgs, seedPool, tempDir } from "../support/berth.ts";
import { docCommands, docTranscript } from "../support/docs/doc-blocks.ts";
import { compareOutput, runShell, toolDir } from "../support/docs/doc-shell.ts";

if (process.getuid?.() !== 0)
  throw new Error("test/binary/doc-commands.test.ts needs root: the documented host paths are mounted over in a private mount namespace");

const DB_DIR = "/var/lib/cni/berth";
const S = suite<{ dir: string; tools: string; cleanup: () => void }>("the documentation's local-mode commands");

S.before((ctx) => {
  const dir = tempDir("berth-doc-");
  const tools = toolDir({ berth: BERTH });
  Object.assign(ctx, {
    dir: dir.path,
    tools: tools.dir,
    cleanup: () => {
      tools.cleanup();
      dir.cleanup();
    },
  });
});
S.after((ctx) => ctx.cleanup());

/**
 * What docs/troubleshooting.md describes: three StatefulSet pods started on
 * the network of docs/pools.md's example, then test-sts-2's sandbox deleted
 * (its binding stays). The container IDs are the page's.
 */
function makeDatabase(dataDir: string): void {
  const conf = {
    cniVersion: "1.0.0",
    name: "macvlan-ens192",
    type: "macvlan",
    ipam: { type: "berth", dataDir, pools: [seedPool()], default_ipv4_ippool: ["test-ippool"] },
  };
  const sandboxes: [string, string][] = [
    ["test-sts-0", "8d1c4f2a7b3e90d1"],
    ["test-sts-1", "f03b9e6d5c21a7e4"],
    ["test-sts-2", "2b6e0a9f4c8d13b7"],
  ];
  for (const [pod, cid] of sandboxes) {
    const r = cni({ command: "ADD", containerId: cid, ifname: "eth0", netns: `/var/run/netns/${cid}`, args: podArgs("default", pod), stdin: conf });
    assert.is(r.status, 0, `ADD ${pod}: ${r.stdout}`);
  }
  const del = cni({ command: "DEL", containerId: sandboxes[2][1], ifname: "eth0", args: podArgs("default", "test-sts-2"), stdin: conf });
  assert.is(del.status, 0, `DEL test-sts-2: ${del.stdout}`);
}

S("docs/troubleshooting.md: berth inspect and berth release print what the page shows", ({ dir, tools }) => {
  const data = join(dir, "inspect");
  mkdirSync(data);
  makeDatabase(data);
  const steps = docTranscript("local-inspect");
  assert.ok(steps.length >= 4, "the page shows inspect and release");
  const bindings = new Map<string, string>();
  for (const step of steps) {
    const r = runShell(step.command, { cwd: dir, tools, mounts: { [DB_DIR]: data } });
    assert.is(r.status, 0, `${step.command}: ${r.stderr}`);
    const problems = compareOutput(step.output, r.stdout.split("\n"), { vary: ["SINCE", "BOUND-SINCE", "LAST-USED"] }, bindings);
    assert.equal(problems, [], `${step.command}: the page shows\n${step.output.join("\n")}\nberth printed\n${r.stdout}`);
  }
});

S("docs/troubleshooting.md: -o json, --network and --help", ({ dir, tools }) => {
  const data = join(dir, "more");
  mkdirSync(data);
  makeDatabase(data);
  const [json, network, help, ...rest] = docCommands("local-inspect-more");
  assert.equal(rest, [], "three commands");
  const run = (cmd: string) => {
    const r = runShell(cmd, { cwd: dir, tools, mounts: { [DB_DIR]: data } });
    assert.is(r.status, 0, `${cmd}: ${r.stderr}`);
    return r.stdout;
  };
  const pools = JSON.parse(run(json));
  assert.equal(
    pools.map((p: { name: string; allocated: number; total: number }) => [p.name, p.allocated, p.total]),
    [["test-ippool", 3, 10]],
    json,
  );
  assert.is(run(network).trim().split("\n").length, 3, `${network}: the header and two leases`);
  assert.match(run(help), "berth inspect [leases|bindings|pools]", help);
});

S("docs/troubleshooting.md: the sqlite3 queries run on the node's database", ({ dir, tools }) => {
  const data = join(dir, "sqlite");
  mkdirSync(data);
  makeDatabase(data);
  const cmds = docCommands("local-sqlite");
  const out = cmds.map((cmd) => {
    const r = runShell(cmd, { cwd: dir, tools, mounts: { [DB_DIR]: data } });
    assert.is(r.status, 0, `${cmd}: ${r.stderr}`);
    assert.is(r.stderr, "", `${cmd}: nothing on stderr`);
    return r.stdout;
  });
  const [tables, addresses, leases, bindings, pending, version] = out;
  assert.equal(cmds.length, 6, "six queries");
  for (const t of ["addresses", "bindings", "claim_hints", "leases", "pools"]) assert.match(tables, new RegExp(`\\b${t}\\b`), `.tables lists ${t}`);
  assert.match(addresses, /^network\|address\|pool\|state\|/, "addresses has a header");
  assert.match(addresses, /10\.6\.168\.103\|test-ippool\|reserved\|default\|test-sts-2/, "test-sts-2's address is reserved for it");
  assert.is(leases.trim().split("\n").length, 2, "two leases of test-ippool");
  assert.is(bindings.trim().split("\n").length, 3, "three bindings");
  assert.is(pending, "", "no pending lease in local mode");
  assert.match(version, /^\d+\n$/, "the schema version");
});

S("docs/deploy.md: the hand install puts dist/berth in the CNI bin directory, 0755, by rename", ({ dir, tools }) => {
  const bin = join(dir, "opt-cni-bin");
  mkdirSync(bin);
  // The command names dist/berth relative to the checkout: a directory whose dist/berth is the binary under test.
  const checkout = join(dir, "checkout");
  mkdirSync(join(checkout, "dist"), { recursive: true });
  symlinkSync(BERTH, join(checkout, "dist/berth"));
  const [cmd, ...rest] = docCommands("install-copy");
  assert.equal(rest, [], "one command");
  for (const round of ["first install", "again, over the installed one"]) {
    const r = runShell(cmd, { cwd: checkout, tools, mounts: { "/opt/cni/bin": bin } });
    assert.is(r.status, 0, `${round}: ${cmd}: ${r.stderr}`);
    assert.equal(readdirSync(bin), ["berth"], `${round}: only berth, no temporary file left`);
    assert.is((statSync(join(bin, "berth")).mode & 0o777).toString(8), "755", `${round}: mode 0755`);
    assert.ok(readFileSync(join(bin, "berth")).equals(readFileSync(BERTH)), `${round}: the same bytes as the binary`);
  }
});

S.run();
