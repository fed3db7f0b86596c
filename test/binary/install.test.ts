/**
 * `berth install` of dist/berth, in temporary directories standing in for the
 * host's /opt/cni/bin and /etc/cni/net.d, with a fake service-account token
 * and CA.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BERTH, cli, tempDir } from "../support/berth.ts";
import { logged } from "../support/log-lines.ts";

const { path: dir, cleanup } = tempDir("berth-install-");
const SERVER = "https://10.96.0.1:443";
const CA = "-----BEGIN CERTIFICATE-----\nMIIBfakeCAforTestsOnly\n-----END CERTIFICATE-----\n";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const mode = (p: string) => statSync(p).mode & 0o7777;

/** A fresh node: bin dir, net.d, service-account dir, and a source binary (random bytes). */
function node(name: string, sourceBytes = 3 << 20) {
  const root = join(dir, name);
  const n = {
    root,
    bin: join(root, "opt/cni/bin"),
    netd: join(root, "etc/cni/net.d"),
    kubeconfig: join(root, "etc/cni/net.d/berth.d/berth.kubeconfig"),
    token: join(root, "sa/token"),
    ca: join(root, "sa/ca.crt"),
    source: join(root, "image/berth"),
  };
  for (const d of [n.bin, n.netd, join(root, "sa"), join(root, "image")]) mkdirSync(d, { recursive: true });
  writeFileSync(n.token, "token-one\n");
  writeFileSync(n.ca, CA);
  writeFileSync(n.source, randomBytes(sourceBytes), { mode: 0o755 });
  return n;
}

/** `install` with every path in node `n`; `set` overrides or (undefined) drops a flag. */
function flags(n: ReturnType<typeof node>, extra: string[] = [], set: Record<string, string | undefined> = {}): string[] {
  const all: Record<string, string | undefined> = {
    "--source": n.source,
    "--cni-bin-dir": n.bin,
    "--kubeconfig-out": n.kubeconfig,
    "--token-file": n.token,
    "--ca-file": n.ca,
    "--server": SERVER,
    ...set,
  };
  return ["install", ...Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [k, v])), ...extra];
}

function loadKubeconfig(path: string) {
  const kc = new KubeConfig();
  kc.loadFromString(readFileSync(path, "utf8"));
  return { cluster: kc.getCurrentCluster(), user: kc.getCurrentUser() };
}

test("--once copies the binary byte-identical with mode 0755 and leaves no temporary file", () => {
  const n = node("first");
  const r = cli(flags(n, ["--once"]));
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, "");
  const target = join(n.bin, "berth");
  assert.ok(readFileSync(target).equals(readFileSync(n.source)), "byte-identical");
  assert.is(mode(target), 0o755);
  assert.equal(readdirSync(n.bin), ["berth"]);
  const copied = logged(r.stderr, "binary copied", { level: "info", bytes: 3145728 });
  assert.is(copied.length, 1, r.stderr);
  assert.match(String(copied[0].to), /\/opt\/cni\/bin\/berth$/);
  assert.match(String(copied[0].sha256), /^[0-9a-f]{64}$/);
  assert.is(logged(r.stderr, "kubeconfig written", { level: "info" }).length, 1, r.stderr);
  assert.is(r.stderr.trim().split("\n").length, 2, "one line per action");
});

test("a second run finds identical content and changes nothing; a new source replaces it", () => {
  const n = node("again");
  const target = join(n.bin, "berth");
  assert.is(cli(flags(n, ["--once"])).status, 0);
  const before = statSync(target);
  const r = cli(flags(n, ["--once"]));
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, "binary unchanged (identical content)");
  assert.match(r.stderr, "kubeconfig unchanged");
  const after = statSync(target);
  assert.is(after.ino, before.ino, "not rewritten");
  assert.is(after.mtimeMs, before.mtimeMs);

  // Same size, different content: the hash decides, not the size.
  const next = randomBytes(3 << 20);
  writeFileSync(n.source, next);
  const r2 = cli(flags(n, ["--once"]));
  assert.match(r2.stderr, "binary copied");
  assert.ok(readFileSync(target).equals(next));
  assert.is.not(statSync(target).ino, before.ino, "replaced by rename");
  assert.is(mode(target), 0o755);
});

test("the kubeconfig embeds server, CA and token, is 0600 in a 0700 directory, and loads with @kubernetes/client-node", () => {
  const n = node("kubeconfig");
  assert.is(cli(flags(n, ["--once"])).status, 0);
  assert.is(mode(n.kubeconfig), 0o600);
  assert.is(mode(join(n.netd, "berth.d")), 0o700);
  const { cluster, user } = loadKubeconfig(n.kubeconfig);
  assert.is(cluster?.server, SERVER);
  assert.is(Buffer.from(cluster?.caData ?? "", "base64").toString(), CA);
  assert.is(cluster?.caFile, undefined, "the CA is embedded: the host cannot see the pod's files");
  assert.is(user?.token, "token-one");
  assert.not.match(readFileSync(n.kubeconfig, "utf8"), n.root, "no path of the pod in it");
});

test("the server comes from KUBERNETES_SERVICE_HOST/PORT (IPv6 in brackets) when --server is absent", () => {
  const n = node("in-cluster");
  const args = flags(n, ["--once"], { "--server": undefined });
  const r = spawnSync(BERTH, args, {
    env: { PATH: process.env.PATH, KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "6443" },
    encoding: "utf8",
  });
  assert.is(r.status, 0, r.stderr);
  assert.is(loadKubeconfig(n.kubeconfig).cluster?.server, "https://[fd00:10:96::1]:6443");
  const none = spawnSync(BERTH, args, { env: { PATH: process.env.PATH }, encoding: "utf8" });
  assert.is(none.status, 1);
  assert.match(none.stderr, "KUBERNETES_SERVICE_HOST is not set");
});

async function waitFor(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Replaces a file by rename, as the kubelet updates projected volumes (never seen half-written). */
function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.new`, content, { mode: 0o600 });
  renameSync(`${path}.new`, path);
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
}

test("without --once it rewrites the kubeconfig when the token or CA rotates or the file goes (not over another writer's file), and exits 0 on SIGTERM", async () => {
  const n = node("watch");
  const child = spawn(BERTH, flags(n, ["--interval-seconds", "0.2"]), { env: { PATH: process.env.PATH }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const done = exited(child);
  try {
    await waitFor("the watch to start", () => err.includes("watching the token and CA files"));
    assert.is(loadKubeconfig(n.kubeconfig).user?.token, "token-one");

    replaceFile(n.token, "token-two\n");
    await waitFor("the new token in the kubeconfig", () => readFileSync(n.kubeconfig, "utf8").includes("token-two"));
    assert.is(loadKubeconfig(n.kubeconfig).user?.token, "token-two");
    assert.is(mode(n.kubeconfig), 0o600);
    await waitFor("the log line", () => logged(err, "kubeconfig refreshed", { level: "info", reason: "token changed" }).length === 1);

    replaceFile(n.ca, CA.replace("fake", "rotated"));
    await waitFor("the new CA", () =>
      Buffer.from(loadKubeconfig(n.kubeconfig).cluster?.caData ?? "", "base64")
        .toString()
        .includes("rotated"),
    );
    await waitFor("the log line", () => logged(err, "kubeconfig refreshed", { reason: "CA changed" }).length === 1);

    // Rewritten by someone else (the next installer pod, during a surge rollout): left to them, even when the token rotates.
    const foreign = readFileSync(n.kubeconfig, "utf8").replace("token-two", "token-of-the-next-pod");
    replaceFile(n.kubeconfig, foreign);
    replaceFile(n.token, "token-three\n");
    await waitFor("the log line", () => err.includes("kubeconfig rewritten by another writer"));
    await new Promise((r) => setTimeout(r, 600));
    assert.is(readFileSync(n.kubeconfig, "utf8"), foreign, "not overwritten");
    assert.is(err.split("another writer").length - 1, 1, "said once");

    // Gone: written again, with the current token.
    unlinkSync(n.kubeconfig);
    await waitFor("the kubeconfig to come back", () => readdirSync(join(n.netd, "berth.d")).includes("berth.kubeconfig"));
    await waitFor("the log line", () => logged(err, "kubeconfig refreshed", { reason: "kubeconfig missing" }).length === 1);
    assert.is(loadKubeconfig(n.kubeconfig).user?.token, "token-three");

    // A token that cannot be read keeps the last good kubeconfig (said once), and the process alive.
    unlinkSync(n.token);
    await waitFor("the complaint", () => err.includes("keeping the kubeconfig as it is"));
    await new Promise((r) => setTimeout(r, 500));
    assert.is(err.split("keeping the kubeconfig as it is").length - 1, 1, "said once");
    assert.is(loadKubeconfig(n.kubeconfig).user?.token, "token-three");
    assert.is(child.exitCode, null, "still running");
  } finally {
    child.kill("SIGTERM");
  }
  const { code, signal } = await done;
  assert.is(signal, null);
  assert.is(code, 0, err);
  assert.is(logged(err, "stopping", { level: "info", signal: "SIGTERM" }).length, 1, err);
  assert.equal(readdirSync(join(n.netd, "berth.d")), ["berth.kubeconfig"], "no temporary kubeconfig left");
});

test("a missing token file, CA or bin dir is an error (exit 1) naming the path, and nothing is installed", () => {
  const n = node("errors");
  const target = join(n.bin, "berth");
  const r = cli(flags(n, ["--once"], { "--token-file": join(n.root, "sa/nope") }));
  assert.is(r.status, 1);
  assert.match(r.stderr, `cannot read the service-account token file ${join(n.root, "sa/nope")}: does not exist (ENOENT)`);
  assert.equal(readdirSync(n.bin), [], "no binary installed with bad inputs");
  assert.equal(readdirSync(n.netd), []);

  writeFileSync(join(n.root, "sa/empty"), " \n");
  assert.match(
    cli(flags(n, ["--once"], { "--token-file": join(n.root, "sa/empty") })).stderr,
    `the service-account token file ${join(n.root, "sa/empty")} is empty`,
  );
  const notPem = cli(flags(n, ["--once"], { "--ca-file": n.token }));
  assert.is(notPem.status, 1);
  assert.match(notPem.stderr, `the CA file ${n.token} holds no PEM certificate`);

  const missingBin = cli(flags(n, ["--once"], { "--cni-bin-dir": join(n.root, "no/such/dir") }));
  assert.is(missingBin.status, 1);
  assert.match(missingBin.stderr, `CNI bin dir ${join(n.root, "no/such/dir")}: does not exist (ENOENT)`);
  const fileAsBin = cli(flags(n, ["--once"], { "--cni-bin-dir": n.token }));
  assert.is(fileAsBin.status, 1);
  assert.match(fileAsBin.stderr, `CNI bin dir ${n.token} is not a directory`);
  // Not writable: root ignores permissions, so drop every capability (as the DaemonSet does) for a directory root does not own.
  if (process.getuid?.() === 0 && spawnSync("setpriv", ["--version"]).status === 0) {
    const foreign = join(n.root, "foreign-bin");
    mkdirSync(foreign, { mode: 0o755 });
    chownSync(foreign, 65534, 65534);
    const r2 = spawnSync("setpriv", ["--bounding-set=-all", "--inh-caps=-all", "--", BERTH, ...flags(n, ["--once"], { "--cni-bin-dir": foreign })], {
      encoding: "utf8",
    });
    assert.is(r2.status, 1, r2.stderr);
    assert.match(r2.stderr, `CNI bin dir ${foreign} is not writable: permission denied (EACCES)`);
  }
  const noSource = cli(flags(n, ["--once"], { "--source": join(n.root, "image/nope") }));
  assert.is(noSource.status, 1);
  assert.match(noSource.stderr, `cannot read the binary to install ${join(n.root, "image/nope")}: does not exist (ENOENT)`);
  assert.not.ok(statSync(target, { throwIfNoEntry: false }));
});

test("usage errors exit 2; --help describes install", () => {
  for (const extra of [
    ["--interval-seconds", "0"],
    ["--interval-seconds", "soon"],
    ["--server", "10.96.0.1"],
    ["--log-level", "loud"],
    ["stray"],
    ["--server", "https://a", "--server", "https://b"],
    ["--source"],
  ]) {
    const r = cli(["install", "--once", ...extra]);
    assert.is(r.status, 2, extra.join(" "));
    assert.match(r.stderr, "Run 'berth --help' for usage.");
  }
  const help = cli(["--help"]).stdout;
  for (const s of ["berth install", "--cni-bin-dir", "--kubeconfig-out", "--token-file", "--ca-file", "--server", "--once", "--interval-seconds"])
    assert.ok(help.includes(s), s);
});

/** Every path under `root` with its inode, size, mode and mtime: equal snapshots mean nothing was written. */
function snapshot(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: "utf8" })
    .sort()
    .map((rel) => {
      const st = lstatSync(join(root, rel));
      return `${rel} ${st.ino} ${st.size} ${(st.mode & 0o7777).toString(8)} ${st.mtimeMs}`;
    });
}

test("--check (the readiness probe) exits 0 only when this binary and the kubeconfig are installed, says what is not in one line, and writes nothing", () => {
  const n = node("check");
  const target = join(n.bin, "berth");
  const kubeconfigDir = join(n.netd, "berth.d");
  const check = (expect: number, says?: string) => {
    const before = snapshot(n.root);
    const r = cli(["install", "--check", "--cni-bin-dir", n.bin, "--kubeconfig-out", n.kubeconfig]);
    assert.equal(snapshot(n.root), before, "nothing written");
    assert.is(r.stdout, "");
    assert.is(r.status, expect, r.stderr);
    if (says === undefined) return assert.is(r.stderr, "");
    assert.is(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
    assert.match(r.stderr, `berth: not ready: ${says}`);
  };

  check(1, `the plugin ${target}: does not exist (ENOENT)`);
  // The default source: the running binary, dist/berth itself, as in the DaemonSet.
  const r = cli(flags(n, ["--once"], { "--source": undefined }));
  assert.is(r.status, 0, r.stderr);
  check(0);

  chmodSync(n.kubeconfig, 0o644);
  check(1, `the kubeconfig ${n.kubeconfig} has mode 0644, expected 0600`);
  chmodSync(n.kubeconfig, 0o600);
  chmodSync(kubeconfigDir, 0o755);
  check(1, `the kubeconfig directory ${kubeconfigDir} has mode 0755, expected 0700`);
  chmodSync(kubeconfigDir, 0o700);
  renameSync(n.kubeconfig, `${n.kubeconfig}.away`);
  check(1, `the kubeconfig ${n.kubeconfig}: does not exist (ENOENT)`);
  renameSync(`${n.kubeconfig}.away`, n.kubeconfig);
  check(0);

  // Another build of the same size (here: the last byte differs): the content decides, not the size.
  const own = readFileSync(BERTH);
  const other = Buffer.from(own);
  other[other.length - 1] ^= 0xff;
  writeFileSync(target, other, { mode: 0o755 });
  check(1, `the plugin ${target} differs from ${BERTH}`);
  writeFileSync(target, own.subarray(0, own.length - 1));
  check(1, `the plugin ${target} has ${own.length - 1} bytes, ${BERTH} has ${own.length}`);
  writeFileSync(target, own);
  chmodSync(target, 0o644);
  check(1, `the plugin ${target} has mode 0644, expected 0755`);
  assert.is(cli(flags(n, ["--once"], { "--source": undefined })).status, 0);
  check(0);

  const both = cli(["install", "--check", "--once"]);
  assert.is(both.status, 2);
  assert.match(both.stderr, "--check and --once do not go together");
  rmSync(n.root, { recursive: true, force: true });
});

test("temporary files left by an interrupted install are removed once they are old; recent ones are left alone", () => {
  const n = node("stale");
  const old = join(n.bin, ".berth.tmp-1-deadbeef");
  const recent = join(n.bin, ".berth.tmp-2-cafecafe");
  writeFileSync(old, "half");
  writeFileSync(recent, "in progress");
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(old, hourAgo, hourAgo);
  const r = cli(flags(n, ["--once"]));
  assert.is(r.status, 0, r.stderr);
  assert.is(logged(r.stderr, "removed a temporary file left by an interrupted install", { component: "install", path: old }).length, 1, r.stderr);
  assert.equal(readdirSync(n.bin).sort(), [".berth.tmp-2-cafecafe", "berth"]);
});

test("atomic: while a 100 MB binary replaces the old one, the target is only ever the whole old or the whole new file", async () => {
  const n = node("atomic", 100 << 20);
  const target = join(n.bin, "berth");
  const oldContent = randomBytes(5 << 20);
  writeFileSync(target, oldContent, { mode: 0o755 });
  const newContent = readFileSync(n.source);
  const TAIL = 64 << 10;
  const versions = [
    { name: "old", size: oldContent.length, sha: sha(oldContent), tail: oldContent.subarray(-TAIL) },
    { name: "new", size: newContent.length, sha: sha(newContent), tail: newContent.subarray(-TAIL) },
  ];
  const byInode = new Map<number, (typeof versions)[number]>();
  const seen = { old: 0, new: 0, tempWhileOld: 0 };
  const tail = Buffer.alloc(TAIL);

  /** One look at the target path, as the runtime would exec it. */
  const observe = () => {
    const temp = readdirSync(n.bin).some((e) => e.startsWith(".berth.tmp-"));
    const fd = openSync(target, "r");
    try {
      const st = fstatSync(fd);
      let v = byInode.get(st.ino);
      if (!v) {
        // First sight of this inode: it must already be one complete version, checked whole.
        const whole = readFileSync(fd);
        const h = sha(whole);
        v = versions.find((x) => x.sha === h);
        assert.ok(v, `target held ${whole.length} bytes that are neither the old nor the new file`);
        assert.is(st.size, v.size);
        byInode.set(st.ino, v);
      } else {
        // Seen before: same size and the same last 64 KiB (no rewrite in place).
        assert.is(st.size, v.size, `the ${v.name} file changed size in place`);
        readSync(fd, tail, 0, TAIL, v.size - TAIL);
        assert.ok(tail.equals(v.tail), `the ${v.name} file changed in place`);
      }
      seen[v.name as "old" | "new"]++;
      if (temp && v.name === "old") seen.tempWhileOld++;
    } finally {
      closeSync(fd);
    }
  };

  const child = spawn(BERTH, flags(n, ["--once"]), { env: { PATH: process.env.PATH }, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const done = exited(child);
  let running = true;
  done.then(() => (running = false));
  try {
    for (let i = 0; running; i++) {
      observe();
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    if (running) child.kill("SIGKILL"); // a failed look: do not leave it writing into the directory being removed
  }
  const { code } = await done;
  assert.is(code, 0, err);
  observe();
  assert.ok(seen.old > 0, "saw the old file");
  assert.ok(seen.tempWhileOld > 0, `saw the copy in progress (temporary file present) while the target was still the old file: ${JSON.stringify(seen)}`);
  assert.ok(seen.new > 0, "saw the new file");
  assert.is(sha(readFileSync(target)), versions[1].sha);
  assert.is(mode(target), 0o755);
  assert.equal(readdirSync(n.bin), ["berth"], "no temporary file left");
  rmSync(n.root, { recursive: true, force: true });
});

test.after(cleanup);
test.run();
