/**
 * The kubeconfig reader's contract, run under Node (js-yaml parses) and under
 * bun (bun's own YAML parser, as in the compiled binary): every field form it
 * serves, what it leaves to client-node, and errors that name the field and
 * the file.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { renderKubeconfig } from "../../../plugin/install/kubeconfig.ts";
import { type DirectConfig, readKubeconfig } from "../../../plugin/kube/kubeconfig-reader.ts";

const CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";
const b64 = (s: string) => Buffer.from(s).toString("base64");

/** A kubeconfig with one cluster, one user and one context, the given fields under each. */
function kubeconfig(cluster: string[], user: string[], extra = ""): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: c",
    "  cluster:",
    ...cluster.map((l) => `    ${l}`),
    "users:",
    "- name: u",
    ...(user.length ? ["  user:", ...user.map((l) => `    ${l}`)] : []),
    "contexts:",
    "- name: x",
    "  context: {cluster: c, user: u}",
    "current-context: x",
    extra,
  ].join("\n");
}

export function kubeconfigContract(runtime: string): void {
  const s = suite<{ dir: string; write: (name: string, text: string) => string }>(`kubeconfig reader (${runtime})`);
  s.before.each((ctx) => {
    ctx.dir = mkdtempSync(join(tmpdir(), "berth-kubeconfig-"));
    ctx.write = (name, text) => {
      const p = join(ctx.dir, name);
      writeFileSync(p, text);
      return p;
    };
  });
  s.after.each((ctx) => rmSync(ctx.dir, { recursive: true, force: true }));

  const direct = (path: string): DirectConfig => {
    const r = readKubeconfig(path);
    assert.ok(r.direct, `direct, not fallback: ${r.fallback}`);
    return r.direct!;
  };
  const throws = (path: string, ...parts: string[]) => {
    try {
      readKubeconfig(path);
    } catch (err) {
      for (const p of parts) assert.match((err as Error).message, p);
      return;
    }
    assert.unreachable(`expected an error naming ${parts.join(", ")}`);
  };

  s("what `berth install` writes: server, CA data and token, JSON-quoted", (ctx) => {
    const path = ctx.write("k", renderKubeconfig({ server: "https://10.96.0.1:443", caPem: CA, token: 'ey"J\\hb' }));
    const d = direct(path);
    assert.is(d.server, "https://10.96.0.1:443");
    assert.is(d.ca, CA);
    assert.is(d.token(), 'ey"J\\hb');
    assert.is(d.cert, undefined);
    assert.is(d.source, path);
  });

  s("certificate-authority and client certificate files, relative to the kubeconfig's directory", (ctx) => {
    mkdirSync(join(ctx.dir, "pki"));
    ctx.write("pki/ca.crt", CA);
    ctx.write("pki/c.crt", CERT);
    const keyPath = ctx.write("c.key", KEY);
    const d = direct(
      ctx.write(
        "k",
        kubeconfig(["server: https://127.0.0.1:6443/", "certificate-authority: pki/ca.crt"], ["client-certificate: pki/c.crt", `client-key: ${keyPath}`]),
      ),
    );
    assert.is(d.server, "https://127.0.0.1:6443", "trailing slash dropped");
    assert.is(d.ca, CA);
    assert.is(d.cert, CERT);
    assert.is(d.key, KEY);
    assert.is(d.token(), undefined);
  });

  s("-data forms; a file wins over its -data form, as client-node reads them; tls-server-name; a path prefix stays", (ctx) => {
    ctx.write("ca.crt", CA);
    const d = direct(
      ctx.write(
        "k",
        kubeconfig(
          [
            "server: https://lb.example:8443/k8s",
            `certificate-authority-data: ${b64("other")}`,
            "certificate-authority: ca.crt",
            "tls-server-name: kubernetes",
          ],
          [`client-certificate-data: ${b64(CERT)}`, `client-key-data: ${b64(KEY)}`, "token: t0"],
        ),
      ),
    );
    assert.is(d.ca, CA);
    assert.is(d.cert, CERT);
    assert.is(d.key, KEY);
    assert.is(d.serverName, "kubernetes");
    assert.is(d.server, "https://lb.example:8443/k8s");
    assert.is(d.token(), "t0");
  });

  s("token-file: read again for every request (rotation), trimmed, relative to the kubeconfig; an inline token wins", (ctx) => {
    ctx.write("token", "first\n");
    const d = direct(ctx.write("k", kubeconfig(["server: https://h:1", `certificate-authority-data: ${b64(CA)}`], ["token-file: token"])));
    assert.is(d.token(), "first");
    ctx.write("token", "second");
    assert.is(d.token(), "second", "the rotated token");
    const both = direct(ctx.write("k2", kubeconfig(["server: https://h:1"], ["token: inline", "token-file: token"])));
    assert.is(both.token(), "inline");
  });

  s("a context without a user, or naming none that exists: no credentials", (ctx) => {
    const text = kubeconfig(["server: https://h:1"], []).replace("{cluster: c, user: u}", "{cluster: c}");
    assert.is(direct(ctx.write("k", text)).token(), undefined);
    assert.is(direct(ctx.write("k2", kubeconfig(["server: https://h:1"], ["token: t"]).replace("user: u}", "user: nobody}"))).token(), undefined);
  });

  s("YAML the reader's parser refuses is left to client-node (its loader decides, and names the error, as before)", (ctx) => {
    assert.match(readKubeconfig(ctx.write("bad", "clusters: [\n")).fallback!, "YAML");
  });

  s("an unquoted all-digit token is a token", (ctx) => {
    assert.is(direct(ctx.write("k", kubeconfig(["server: https://h:1"], ["token: 12345"]))).token(), "12345");
  });

  s("what only client-node serves falls back, naming the field", (ctx) => {
    const cases: [string[], string[], string][] = [
      [["server: https://h:1"], ["exec:", "  apiVersion: client.authentication.k8s.io/v1", "  command: /bin/true"], "users[0].user.exec"],
      [["server: https://h:1"], ["auth-provider:", "  name: oidc"], "users[0].user.auth-provider"],
      [["server: https://h:1"], ["username: a", "password: b"], "users[0].user.username"],
      [["server: https://h:1"], ["token: t", "as: someone"], "users[0].user.as"],
      [["server: https://h:1", "proxy-url: http://proxy:3128"], ["token: t"], "clusters[0].cluster.proxy-url"],
      [["server: http://h:8080"], ["token: t"], "clusters[0].cluster.server is not https"],
    ];
    for (const [cluster, user, field] of cases) {
      const r = readKubeconfig(ctx.write("k", kubeconfig(cluster, user)));
      assert.is(r.direct, undefined, field);
      assert.match(r.fallback!, field);
    }
  });

  s("insecure-skip-tls-verify is refused, fallback or not", (ctx) => {
    throws(ctx.write("k", kubeconfig(["server: https://h:1", "insecure-skip-tls-verify: true"], ["token: t"])), "insecure-skip-tls-verify", ctx.dir);
    throws(ctx.write("k2", kubeconfig(["server: https://h:1", "insecure-skip-tls-verify: true"], ["exec: {command: x}"])), "insecure-skip-tls-verify");
  });

  s("errors name the file and the field", (ctx) => {
    throws(join(ctx.dir, "absent"), join(ctx.dir, "absent"), "ENOENT");
    throws(ctx.write("list", "- a\n- b\n"), "not a kubeconfig");
    throws(
      ctx.write("ca", kubeconfig(["server: https://h:1", "certificate-authority: nope.crt"], ["token: t"])),
      "clusters[0].cluster.certificate-authority",
      join(ctx.dir, "nope.crt"),
    );
    throws(
      ctx.write("key", kubeconfig(["server: https://h:1"], ["client-certificate-data: eA==", "client-key: /nonexistent/k"])),
      "users[0].user.client-key",
      "/nonexistent/k",
    );
    throws(ctx.write("tok", kubeconfig(["server: https://h:1"], ["token-file: /nonexistent/t"])), "users[0].user.token-file", "/nonexistent/t");
    throws(ctx.write("nocur", kubeconfig(["server: https://h:1"], []).replace("current-context: x", "")), "names no current cluster");
    throws(ctx.write("noserver", kubeconfig(["certificate-authority-data: eA=="], [])), "clusters[0].cluster.server is missing");
    throws(ctx.write("notstr", kubeconfig(["server: https://h:1"], ["token: [1, 2]"])), "users[0].user.token is not a string");
    throws(ctx.write("ctx", kubeconfig(["server: https://h:1"], []).replace("{cluster: c, user: u}", "{user: u}")), "contexts[0].context.cluster is missing");
    throws(ctx.write("uname", kubeconfig(["server: https://h:1"], []).replace("- name: u", "- nom: u")), "users[0].name is missing");
  });

  s("in-cluster: service host and port, the mounted CA and token (read per request); IPv6 in brackets; plain-http ports fall back", (ctx) => {
    const sa = join(ctx.dir, "sa");
    mkdirSync(sa);
    writeFileSync(join(sa, "ca.crt"), CA);
    writeFileSync(join(sa, "token"), "sa-token\n");
    const r = readKubeconfig(undefined, { env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountDir: sa });
    assert.is(r.direct?.server, "https://10.96.0.1:443");
    assert.is(r.direct?.ca, CA);
    assert.is(r.direct?.token(), "sa-token");
    writeFileSync(join(sa, "token"), "rotated");
    assert.is(r.direct?.token(), "rotated");
    const v6 = readKubeconfig(undefined, { env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" }, serviceAccountDir: sa });
    assert.is(v6.direct?.server, "https://[fd00::1]:6443");
    const http = readKubeconfig(undefined, { env: { KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "8080" }, serviceAccountDir: sa });
    assert.match(http.fallback!, "8080");
    assert.throws(() => readKubeconfig(undefined, { env: {}, serviceAccountDir: sa }), /KUBERNETES_SERVICE_HOST/);
    assert.throws(
      () => readKubeconfig(undefined, { env: { KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountDir: join(ctx.dir, "none") }),
      /service-account CA/,
    );
  });

  s.run();
}
