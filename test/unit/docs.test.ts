/**
 * The documentation cannot go stale unnoticed: every shell block of
 * README.md, BENCHMARKS.md and docs/*.md is either read by a test (tagged
 * `<!-- doc-test: ID -->`) or says why not (`<!-- not-run: REASON -->`), IDs
 * are unique and each is read by some test file, links point somewhere, and
 * the blocks that copy a file of the repository say what that file says.
 * See test/support/docs/doc-blocks.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseNetConf } from "../../plugin/cni/netconf.ts";
import {
  allDocBlocks,
  commandsOf,
  DOCS_ROOT,
  docBlock,
  docCommands,
  docFiles,
  fill,
  parseBlocks,
  SHELL_LANGS,
  transcriptOf,
  whereIs,
} from "../support/docs/doc-blocks.ts";
import { compareOutput } from "../support/docs/doc-shell.ts";
import { SEED_POOL, seedStatefulSet } from "../support/seed-manifests.ts";

const root = DOCS_ROOT;
const blocks = allDocBlocks();

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** IDs that test files read, with the file that reads each. */
function idsReadByTests(): Map<string, string[]> {
  const read = new Map<string, string[]>();
  for (const f of tsFiles(join(root, "test"))) {
    for (const m of readFileSync(f, "utf8").matchAll(/\b(?:docCommands|docTranscript|docBlock)\(\s*"([^"]+)"/g)) {
      read.set(m[1], [...(read.get(m[1]) ?? []), relative(root, f)]);
    }
  }
  return read;
}

test("the parser: commands, continuations, here-documents, transcripts, placeholders", () => {
  assert.equal(commandsOf("# a comment\nls -l   # trailing\n\necho a \\\n  b\ncat <<EOF\nx\nEOF\n"), [
    "ls -l   # trailing",
    "echo a \\\n  b",
    "cat <<EOF\nx\nEOF",
  ]);
  assert.equal(transcriptOf("$ kubectl get sp\nNAME  X\na     1\n$ echo \\\n  hi\nhi\n\n"), [
    { command: "kubectl get sp", output: ["NAME  X", "a     1"] },
    { command: "echo \\\n  hi", output: ["hi"] },
  ]);
  const [b] = parseBlocks("- item\n\n  <!-- doc-test: x -->\n  ```sh\n  ls\n  ```\n", "t.md");
  assert.equal([b.lang, b.text, b.tag], ["sh", "ls\n", { kind: "doc-test", id: "x" }], "a block in a list item");
  assert.is(fill("kubectl patch sp NAME -p x", { NAME: "a" }), "kubectl patch sp a -p x");
  assert.throws(() => fill("kubectl get sp", { NAME: "a" }), /NAME is not in/);
});

test("output comparison: exact columns, varying ones, values bound to the run's own", () => {
  const shown = ["NAME   AGE   IP", "a      3s    10.0.0.5", "b      9s    10.0.0.7"];
  const bound = new Map<string, string>();
  assert.equal(compareOutput(shown, ["NAME   AGE   IP", "a      1m    10.0.0.9", "b      2s    10.0.0.1"], { vary: ["AGE"], bind: ["IP"] }, bound), []);
  assert.equal(bound.get("10.0.0.5"), "10.0.0.9");
  // The same shown address must stand for the same printed one, and no other.
  const swapped = compareOutput(shown, ["NAME   AGE   IP", "a      1m    10.0.0.1", "b      2s    10.0.0.9"], { vary: ["AGE"], bind: ["IP"] }, bound);
  assert.is(swapped.length, 2, swapped.join("; "));
  assert.equal(compareOutput(["x  y"], ["x  z"], {}, bound), ['line 1 y: shown "y", printed "z"']);
  assert.equal(compareOutput(["a"], ["a", "b"], {}, bound), ["1 lines shown, 2 printed"]);
});

test("every fenced block names its language", () => {
  const bare = blocks.filter((b) => b.lang === "").map(whereIs);
  assert.equal(bare, [], "a fenced block without a language (commands would escape the tag rule)");
});

test("every shell block is tagged doc-test or not-run (with a reason)", () => {
  const untagged = blocks.filter((b) => SHELL_LANGS.has(b.lang) && !b.tag).map(whereIs);
  assert.equal(untagged, [], "shell blocks without <!-- doc-test: ID --> or <!-- not-run: REASON --> before the fence");
  const noReason = blocks.filter((b) => b.tag?.kind === "not-run" && b.tag.reason.length < 10).map(whereIs);
  assert.equal(noReason, [], "not-run without a reason");
  const badIds = blocks.filter((b) => b.tag?.kind === "doc-test" && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(b.tag.id)).map(whereIs);
  assert.equal(badIds, [], "doc-test IDs are kebab-case");
});

test("doc-test IDs are unique", () => {
  const seen = new Map<string, string>();
  const twice: string[] = [];
  for (const b of blocks) {
    if (b.tag?.kind !== "doc-test") continue;
    if (seen.has(b.tag.id)) twice.push(`${b.tag.id}: ${seen.get(b.tag.id)} and ${whereIs(b)}`);
    seen.set(b.tag.id, whereIs(b));
  }
  assert.equal(twice, []);
});

test("every doc-test ID is read by a test file, and every ID a test reads exists", () => {
  const read = idsReadByTests();
  const ids = blocks.flatMap((b) => (b.tag?.kind === "doc-test" ? [b.tag.id] : []));
  const unread = blocks.filter((b) => b.tag?.kind === "doc-test" && !read.has(b.tag.id)).map((b) => `${(b.tag as { id: string }).id} (${whereIs(b)})`);
  assert.equal(unread, [], "tagged doc-test but no test file calls docCommands(ID), docTranscript(ID) or docBlock(ID)");
  const missing = [...read].filter(([id]) => !ids.includes(id)).map(([id, files]) => `${id} (read by ${files.join(", ")})`);
  assert.equal(missing, [], "read by a test but no block is tagged so");
});

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading
    .replace(/`/g, "")
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/^(`{3,}|~{3,})[\s\S]*?^\1\s*$/gm, "");
  return new Set([...text.matchAll(/^#{1,6}\s+(.*)$/gm)].map((m) => slug(m[1])));
}

test("relative links point to files and headings that exist", () => {
  const broken: string[] = [];
  for (const f of docFiles()) {
    const text = readFileSync(join(root, f), "utf8").replace(/^\s*(`{3,}|~{3,})[\s\S]*?^\s*\1\s*$/gm, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split("#");
      const file = path ? resolve(dirname(join(root, f)), path) : join(root, f);
      if (!existsSync(file)) broken.push(`${f}: ${target} (no such file)`);
      else if (anchor && file.endsWith(".md") && !anchorsOf(file).has(anchor)) broken.push(`${f}: ${target} (no such heading)`);
    }
  }
  assert.equal(broken, []);
});

test("README under 1,500 words; BENCHMARKS.md under 12 KB, with no path outside the repository", () => {
  const words = readFileSync(join(root, "README.md"), "utf8").split(/\s+/).filter(Boolean).length;
  assert.ok(words < 1500, `README.md has ${words} words`);
  const bench = readFileSync(join(root, "BENCHMARKS.md"), "utf8");
  assert.ok(Buffer.byteLength(bench) < 12_000, `BENCHMARKS.md is ${Buffer.byteLength(bench)} bytes`);
  assert.not.match(bench, /\.\.\//, "BENCHMARKS.md names a path outside the repository");
});

test("the README's test command is what CI runs (.ci/run)", () => {
  const ci = readFileSync(join(root, ".ci/run"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && !l.startsWith("set ") && !l.startsWith("cd "));
  assert.equal(docCommands("readme-test"), [ci.join(" && ")]);
});

test("the README's network is fixtures/deploy/network-attachment-definition.yaml", () => {
  const fixture = readFileSync(join(root, "fixtures/deploy/network-attachment-definition.yaml"), "utf8").replace(/^#.*\n/gm, "");
  assert.is(docBlock("nad-example").text, fixture);
});

test("the README's walkthrough manifests are the seed's (test/support/seed-manifests.ts)", () => {
  assert.is(docBlock("seed-pool").text, SEED_POOL);
  assert.is(docBlock("seed-statefulset").text, seedStatefulSet("NS").replace("  namespace: NS\n", ""));
});

test("the pages' network configurations: the local one is the fixture, the cluster one is valid", () => {
  const fixture = JSON.parse(readFileSync(join(root, "fixtures/netconf/macvlan-berth.conflist"), "utf8"));
  assert.equal(JSON.parse(docBlock("local-netconf").text), fixture);
  const conf = parseNetConf(docBlock("cluster-netconf").text);
  assert.is(conf.ipam.kubeconfig, "/etc/cni/net.d/berth.d/berth.kubeconfig", "cluster mode");
  assert.equal(conf.ipam.pools, []);
});

test("docs/testing.md's command for one test file runs that file", () => {
  const [cmd] = docCommands("test-one-file");
  const r = spawnSync("bash", ["-c", cmd], { cwd: root, encoding: "utf8", env: { ...process.env, FORCE_COLOR: "0" }, timeout: 120_000 });
  assert.is(r.status, 0, `${cmd}: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /Passed:\s+[1-9]/, "it ran tests");
});

test.run();
