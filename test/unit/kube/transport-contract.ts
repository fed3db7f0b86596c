/**
 * The plugin's transport (open-transport.ts) against a local HTTPS server,
 * run under Node (node:https) and under bun (Bun's native fetch, as in the
 * compiled binary): credentials, TLS verification with nothing sent to an
 * impostor, one TLS handshake for sequential requests, the per-request
 * deadline (answer and body), BeforeWrite, the error mapping, and a
 * kubeconfig with an exec credential plugin served through client-node.
 */

import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { KubeConflictError, KubeRequestError, KubeUnreachableError } from "../../../plugin/kube/kube-errors.ts";
import type { KubeTransport } from "../../../plugin/kube/kube-request.ts";
import { openTransport } from "../../../plugin/kube/open-transport.ts";
import { isKind } from "../../../plugin/support/errors.ts";

interface Seen {
  method: string;
  path: string;
  auth?: string;
}
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A CA, a server certificate for 127.0.0.1 from it, and a client certificate from it. */
function pki(dir: string, name: string) {
  const run = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  writeFileSync(join(dir, "ext"), "subjectAltName=IP:127.0.0.1\n");
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", `${name}-ca.key`, "-out", `${name}-ca.crt`, "-subj", `/CN=${name}-ca`);
  for (const [who, ext] of [
    ["server", ["-extfile", "ext"]],
    ["client", []],
  ] as const) {
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}-${who}.key`, "-out", `${name}-${who}.csr`, "-subj", `/CN=${name}-${who}`);
    run(
      "x509",
      "-req",
      "-in",
      `${name}-${who}.csr`,
      "-CA",
      `${name}-ca.crt`,
      "-CAkey",
      `${name}-ca.key`,
      "-CAcreateserial",
      "-out",
      `${name}-${who}.crt`,
      "-days",
      "2",
      ...ext,
    );
  }
  const f = (n: string) => readFileSync(join(dir, `${name}-${n}`), "utf8");
  return { ca: f("ca.crt"), cert: f("server.crt"), key: f("server.key"), clientCert: f("client.crt"), clientKey: f("client.key") };
}

export function transportContract(runtime: string): void {
  const dir = mkdtempSync(join(tmpdir(), "berth-transport-"));
  const good = pki(dir, "good");
  const impostor = pki(dir, "impostor");
  let handler: Handler = (_req, res) => res.end("{}");
  const seen: Seen[] = [];
  let handshakes = 0;

  /** An HTTPS server presenting `creds`' certificate; `clientCa`: it admits only clients with a certificate from that CA. */
  async function serve(creds: { cert: string; key: string }, clientCa?: string) {
    const tls = clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: true } : {};
    const server = createServer({ cert: creds.cert, key: creds.key, ...tls }, (req, res) => {
      seen.push({ method: req.method!, path: req.url!, auth: req.headers.authorization });
      // As an API server does: the whole request is read before it answers.
      req.resume();
      req.on("end", () => handler(req, res));
    });
    server.on("secureConnection", () => handshakes++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }
  const json = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { "content-type": "application/json", date: new Date().toUTCString() });
    res.end(JSON.stringify(body));
  };
  const kubeconfig = (url: string, user: string[], ca = good.ca) =>
    [
      "apiVersion: v1",
      "clusters:",
      `- {name: c, cluster: {server: "${url}", certificate-authority-data: ${Buffer.from(ca).toString("base64")}}}`,
      "users:",
      "- name: u",
      "  user:",
      ...user.map((l) => `    ${l}`),
      "contexts: [{name: x, context: {cluster: c, user: u}}]",
      "current-context: x",
      "",
    ].join("\n");
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };
  const caught = async (p: Promise<unknown>): Promise<Error> => {
    try {
      await p;
    } catch (err) {
      return err as Error;
    }
    throw new Error("expected a rejection");
  };

  const s = suite<{ url: string; close: () => Promise<void>; t: KubeTransport }>(`plugin transport (${runtime})`);
  s.before(async (ctx) => {
    const { server, url } = await serve(good);
    ctx.url = url;
    ctx.close = () => new Promise<void>((r) => server.close(() => r())).then(() => server.closeAllConnections?.());
  });
  s.before.each(async (ctx) => {
    seen.length = 0;
    handshakes = 0;
    handler = (_req, res) => json(res, 200, { ok: true });
    ctx.t = await openTransport(write("token.kubeconfig", kubeconfig(ctx.url, ["token: secret-token"])), 500);
  });
  s.after(async (ctx) => {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  s("a GET carries the token, parses the answer, reads the server's clock; sequential requests share one TLS handshake", async (ctx) => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", date: "Thu, 01 Jan 2037 00:00:00 GMT" });
      res.end('{"n":1}');
    };
    const before = Date.now();
    for (let i = 0; i < 5; i++)
      assert.equal(await ctx.t.request("get x", i % 2 ? "PUT" : "GET", "/api/v1/x", i % 2 ? { a: 1 } : undefined, { q: "1", no: undefined }), { n: 1 });
    assert.is(seen[0].auth, "Bearer secret-token");
    assert.is(seen[0].path, "/api/v1/x?q=1");
    assert.ok(ctx.t.serverNow() >= Date.parse("2037-01-01T00:00:00Z") - 1000 && before < Date.parse("2037-01-01"));
    assert.is(handshakes, 1, "one handshake for five sequential requests");
  });

  s("an impostor (a certificate from another CA) is refused and hears nothing", async () => {
    const { server, url } = await serve(impostor);
    try {
      const t = await openTransport(write("impostor.kubeconfig", kubeconfig(url, ["token: secret-token"])), 2000);
      const err = await caught(t.request("get x", "GET", "/api/v1/x"));
      assert.ok(isKind(err, KubeUnreachableError), err.message);
      assert.equal(seen, [], "no request reached it");
    } finally {
      server.close();
      server.closeAllConnections?.();
    }
  });

  s("a client certificate from the kubeconfig is presented (a server that requires one admits it, and only it)", async () => {
    const { server, url } = await serve(good, good.ca);
    try {
      const cert = [
        `client-certificate-data: ${Buffer.from(good.clientCert).toString("base64")}`,
        `client-key-data: ${Buffer.from(good.clientKey).toString("base64")}`,
      ];
      const t = await openTransport(write("cert.kubeconfig", kubeconfig(url, cert)), 2000);
      assert.equal(await t.request("get x", "GET", "/api/v1/x"), { ok: true });
      assert.is(seen[0].auth, undefined);
      const without = await openTransport(write("nocert.kubeconfig", kubeconfig(url, ["token: t"])), 2000);
      assert.ok(isKind(await caught(without.request("get x", "GET", "/api/v1/x")), KubeUnreachableError));
      assert.is(seen.length, 1, "the request without a certificate did not get through");
    } finally {
      server.close();
      server.closeAllConnections?.();
    }
  });

  s("a token file is read for every request: a rotated token is used at once", async (ctx) => {
    const tokenFile = write("token", "one\n");
    const t = await openTransport(write("file.kubeconfig", kubeconfig(ctx.url, [`token-file: ${tokenFile}`])), 2000);
    await t.request("get x", "GET", "/api/v1/x");
    write("token", "two\n");
    await t.request("get x", "GET", "/api/v1/x");
    assert.equal(
      seen.map((r) => r.auth),
      ["Bearer one", "Bearer two"],
    );
  });

  s("the deadline covers the answer and its body: 'no answer within' the per-request limit", async (ctx) => {
    handler = () => {}; // never answers
    let err = await caught(ctx.t.request("get slow", "GET", "/api/v1/slow"));
    assert.ok(isKind(err, KubeUnreachableError), err.message);
    assert.match(err.message, "get slow: API server");
    assert.match(err.message, "no answer within 500 ms");
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"items": ['); // and then nothing
    };
    err = await caught(ctx.t.request("list stalled", "GET", "/api/v1/stalled"));
    assert.match(err.message, "no answer within 500 ms");
  });

  s("BeforeWrite runs before a write leaves; its error reaches the caller as it is and nothing is sent", async (ctx) => {
    const t = await openTransport(write("bw.kubeconfig", kubeconfig(ctx.url, ["token: x"])), 2000, (what, method) => {
      throw new Error(`stopped ${method} ${what}`);
    });
    const err = await caught(t.request("create y", "POST", "/api/v1/y", { a: 1 }));
    assert.is(err.message, "stopped POST create y");
    assert.equal(seen, []);
    await t.request("get y", "GET", "/api/v1/y");
    assert.is(seen.length, 1, "GETs are not checked");
  });

  s("a command's time limit (TimeLeft): each request gets at most what is left, none is sent once it is 0", async (ctx) => {
    let left = 0;
    const t = await openTransport(write("budget.kubeconfig", kubeconfig(ctx.url, ["token: x"])), 5000, undefined, () => left);
    let err = await caught(t.request("get pod ns/p", "GET", "/api/v1/namespaces/ns/pods/p"));
    assert.ok(isKind(err, KubeUnreachableError) && err.outOfTime, err.message);
    assert.match(err.message, "not sent");
    assert.equal(seen, [], "nothing reached the server");
    // 300 ms left, the server answers after 1.5 s: cut at what was left, not at the 5 s request limit.
    left = 300;
    handler = (_req, res) => void setTimeout(() => json(res, 200, {}), 1500);
    err = await caught(t.request("get pod ns/p", "GET", "/api/v1/namespaces/ns/pods/p"));
    assert.ok(isKind(err, KubeUnreachableError) && err.outOfTime, err.message);
    assert.match(err.message, "no answer within 300 ms, the rest of the command's time");
    // A request's own limit, shorter than what is left, is not the command's time running out.
    const own = await openTransport(write("own.kubeconfig", kubeconfig(ctx.url, ["token: x"])), 300, undefined, () => 60_000);
    err = await caught(own.request("get pod ns/p", "GET", "/api/v1/namespaces/ns/pods/p"));
    assert.ok(isKind(err, KubeUnreachableError) && !err.outOfTime, err.message);
    assert.match(err.message, "no answer within 300 ms)");
  });

  s("errors: 409 conflict, 404 of an object, 404 of a kind not served, 5xx and 429 unreachable, 403 while starting", async (ctx) => {
    const status = (code: number, body: object, readyz = 200) => {
      handler = (req, res) => (req.url === "/readyz" ? json(res, readyz, {}) : json(res, code, body));
    };
    status(409, { kind: "Status", message: "already exists" });
    let err = await caught(ctx.t.request("create c", "POST", "/x", {}));
    assert.ok(isKind(err, KubeConflictError) && err.message === "create c: already exists", err.message);
    status(404, { kind: "Status", message: 'pods "p" not found', details: { name: "p", kind: "pods" } });
    err = await caught(ctx.t.request("get pod", "GET", "/x"));
    assert.ok(isKind(err, KubeRequestError) && err.status === 404, err.message);
    // The same 404 answering a replace or patch: the object was deleted after we read it, a lost race (try again).
    const gone = { kind: "Status", message: 'berthipclaims.ipam.berth.dev "v4-10-0-0-1" not found', details: { name: "v4-10-0-0-1" }, code: 404 };
    status(404, gone);
    for (const method of ["PUT", "PATCH"] as const) {
      err = await caught(ctx.t.request("update berthipclaim v4-10-0-0-1", method, "/x", {}));
      assert.ok(isKind(err, KubeConflictError), `${method}: ${err.message}`);
      assert.match(err.message, "deleted meanwhile");
    }
    err = await caught(ctx.t.request("delete berthipclaim v4-10-0-0-1", "DELETE", "/x"));
    assert.ok(isKind(err, KubeRequestError) && err.status === 404, `a delete's 404 stays "already gone": ${err.message}`);
    err = await caught(ctx.t.request("create berthendpoint ns/p", "POST", "/x", {}));
    assert.ok(isKind(err, KubeRequestError) && err.status === 404, `a create's 404 (its namespace) stays a refusal: ${err.message}`);
    status(404, { kind: "Status", message: "the server could not find the requested resource" });
    err = await caught(ctx.t.request("get claim", "GET", "/x"));
    assert.ok(isKind(err, KubeUnreachableError), err.message);
    assert.match(err.message, "does not serve this kind (yet)");
    for (const code of [500, 503, 429]) {
      status(code, { message: "busy" });
      err = await caught(ctx.t.request("get p", "GET", "/x"));
      assert.ok(isKind(err, KubeUnreachableError) && err.message.includes(`answered ${code}: busy`), err.message);
    }
    status(403, { message: "forbidden: RBAC" });
    err = await caught(ctx.t.request("get p", "GET", "/x"));
    assert.ok(isKind(err, KubeRequestError) && err.status === 403, `ready server: RBAC (${err.message})`);
    status(403, { message: "forbidden" }, 500);
    err = await caught(ctx.t.request("get p", "GET", "/x"));
    assert.ok(isKind(err, KubeUnreachableError), err.message);
    assert.match(err.message, "not ready yet");
  });

  s("a kubeconfig with an exec credential plugin works through client-node, loaded for it", async (ctx) => {
    const plugin = write(
      "exec-plugin.sh",
      `#!/bin/sh\nprintf '%s' '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"exec-token"}}'\n`,
    );
    chmodSync(plugin, 0o755);
    const t = await openTransport(
      write("exec.kubeconfig", kubeconfig(ctx.url, ["exec:", "  apiVersion: client.authentication.k8s.io/v1beta1", `  command: ${plugin}`])),
      5000,
    );
    assert.equal(await t.request("get x", "GET", "/api/v1/x"), { ok: true });
    assert.is(seen[0].auth, "Bearer exec-token");
  });

  s.run();
}
