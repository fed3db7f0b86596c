/** `berth adopt`'s command line through dist/berth: usage errors are exit 2 and touch no API server. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cli, tempDir } from "../support/berth.ts";

const { path: dir, cleanup } = tempDir("berth-adopt-cli-");
// A kubeconfig naming a server nobody listens on: a usage error must be reported before it is read.
const kubeconfig = join(dir, "kubeconfig");
writeFileSync(
  kubeconfig,
  "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
);

test("--help describes berth adopt", () => {
  const r = cli(["--help"]);
  for (const s of ["berth adopt --from whereabouts|spiderpool", "--dry-run", "--interface NAME", "ipam.berth.dev/adopted-from", "docs/adopt.md"])
    assert.ok(r.stdout.includes(s), s);
});

for (const [args, message] of [
  [["adopt"], /--from is required: whereabouts or spiderpool/],
  [["adopt", "--from", "calico"], /--from must be whereabouts or spiderpool, got "calico"/],
  [["adopt", "--from", "whereabouts", "-o", "yaml"], /unknown output format "yaml"/],
  [["adopt", "--from", "whereabouts", "--interface", "a/b"], /--interface must be an interface name .* got "a\/b"/],
  [["adopt", "--from", "whereabouts", "extra"], /berth adopt takes no arguments, got "extra"/],
] as const) {
  test(`usage error: ${args.join(" ")}`, () => {
    const r = cli([...args, "--kubeconfig", kubeconfig]);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.is(r.stdout, "");
  });
}

test("an API server that cannot be reached: exit 2, a message naming the request", () => {
  const r = cli(["adopt", "--from", "whereabouts", "--kubeconfig", kubeconfig, "--dry-run"]);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /^berth adopt: .*ippools/);
});

test.after(cleanup);
test.run();
