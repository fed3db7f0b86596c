/**
 * A TLS fault proxy between berth and the test kube-apiserver. It presents a
 * certificate signed by the test CA (so berth trusts it as it trusts the real
 * server), forwards every request, and on rules you set can delay a request,
 * forward it and then drop the response (the server did the write, the client
 * never hears), hold the response back, reset the connection, answer in
 * the server's place, or keep requests until the test releases them.
 *
 *   const proxy = await FaultProxy.start({ upstream: env.server, pkiDir });
 *   proxy.rule({ method: "PUT", path: /berthendpoints/, action: "drop-response", times: 1 });
 *   writeFileSync(kubeconfigPath, proxy.kubeconfig(token));
 *   ...
 *   await proxy.close();
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type FaultAction =
  /** Wait `ms`, then forward as usual. */
  | "delay"
  /** Forward; once the server has answered, close the client's connection without a word. */
  | "drop-response"
  /** Forward; hold the server's answer back for `ms` before relaying it. */
  | "delay-response"
  /** Close the client's connection at once; the server never sees the request. */
  | "reset"
  /** Answer `status` with `body` in the server's place; the server never sees the request. */
  | "answer"
  /** Keep the request until `release()`, then forward it: lines up racing requests. */
  | "hold";

export interface FaultRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Matched against the path with its query string. */
  path: RegExp;
  action: FaultAction;
  /** For delay and delay-response. */
  ms?: number;
  /** For answer: the status and the body (JSON when an object) to send back. */
  status?: number;
  body?: string | object;
  /** How many matching requests to act on (default: every one). */
  times?: number;
  /** Act on a matching request with this probability (default 1). */
  probability?: number;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  /** What the proxy did to it. */
  fault?: FaultAction;
  /** The server's status, when the request reached it and it answered. */
  status?: number;
}

interface LiveRule extends FaultRule {
  left: number;
}

export class FaultProxy {
  private rules: LiveRule[] = [];
  private heldBack: (() => void)[] = [];
  /** Every request seen, oldest first. */
  readonly log: ProxiedRequest[] = [];
  /**
   * Added to the `Date` header of every answer relayed: the client sees an
   * API server whose clock is this far ahead (negative: behind) of the one
   * that stamped the objects, as with several kube-apiservers behind a load
   * balancer whose clocks differ.
   */
  clockSkewMs = 0;

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    private readonly upstream: URL,
    private readonly ca: Buffer,
    private readonly dir: string,
    readonly url: string,
  ) {}

  /**
   * Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`, with a
   * certificate from the CA in `pkiDir`; `untrusted`: from a CA of its own
   * instead, as an impostor would present (the kubeconfig still names the test CA).
   */
  static async start(opts: { upstream: string; pkiDir: string; untrusted?: boolean }): Promise<FaultProxy> {
    const dir = mkdtempSync(join(tmpdir(), "berth-fault-proxy-"));
    const { key, cert } = issueCertificate(dir, opts.untrusted ? ownCa(dir) : opts.pkiDir);
    const ca = readFileSync(join(opts.pkiDir, "ca.crt"));
    let proxy: FaultProxy | undefined;
    const server = createServer({ key, cert }, (req, res) => proxy!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    proxy = new FaultProxy(server, new URL(opts.upstream), ca, dir, `https://127.0.0.1:${port}`);
    return proxy;
  }

  /** Adds a rule; rules are tried in the order added, the first that applies acts. */
  rule(rule: FaultRule): void {
    this.rules.push({ ...rule, left: rule.times ?? Number.POSITIVE_INFINITY });
  }

  /** Removes every rule: from now on requests pass untouched. */
  clear(): void {
    this.rules = [];
  }

  /** How many requests a "hold" rule keeps now. */
  held(): number {
    return this.heldBack.length;
  }

  /** Forwards every held request, in the order they came. */
  release(): void {
    const all = this.heldBack;
    this.heldBack = [];
    for (const forward of all) forward();
  }

  /** The requests that matched a rule and were acted on. */
  faults(): ProxiedRequest[] {
    return this.log.filter((r) => r.fault);
  }

  /** A kubeconfig that reaches the API server through this proxy with `token`. */
  kubeconfig(token: string): string {
    return [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: proxied",
      "  cluster:",
      `    server: ${this.url}`,
      `    certificate-authority-data: ${this.ca.toString("base64")}`,
      "users:",
      "- name: berth",
      "  user:",
      `    token: ${token}`,
      "contexts:",
      "- name: proxied",
      "  context: {cluster: proxied, user: berth}",
      "current-context: proxied",
      "",
    ].join("\n");
  }

  /** Stops listening, cuts every open connection, removes the certificate. */
  async close(): Promise<void> {
    this.heldBack = [];
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private pick(method: string, path: string): LiveRule | undefined {
    for (const r of this.rules) {
      if (r.left <= 0 || (r.method && r.method !== method) || !r.path.test(path)) continue;
      if (r.probability !== undefined && Math.random() >= r.probability) continue;
      r.left -= 1;
      return r;
    }
    return undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    const entry: ProxiedRequest = { method, path };
    this.log.push(entry);
    const rule = this.pick(method, path);
    if (rule) entry.fault = rule.action;
    if (rule?.action === "reset") {
      req.socket.destroy();
      return;
    }
    if (rule?.action === "answer") {
      const json = typeof rule.body === "object";
      req.resume();
      res.writeHead(rule.status ?? 200, { "content-type": json ? "application/json" : "text/plain; charset=utf-8", date: new Date().toUTCString() });
      res.end(json ? JSON.stringify(rule.body) : (rule.body ?? ""));
      return;
    }
    // A client that went away while its request was held (a delay longer than its own timeout) never reaches
    // the server, as with a real one; forwarding it anyway would leave an upstream request open forever.
    let clientGone = false;
    res.on("close", () => {
      clientGone = true;
    });
    const forward = () => {
      if (clientGone) return;
      const headers = { ...req.headers, host: this.upstream.host };
      const up = httpsRequest(
        { host: this.upstream.hostname, port: this.upstream.port, path, method, headers, ca: this.ca, servername: this.upstream.hostname },
        (upRes) => {
          entry.status = upRes.statusCode;
          if (rule?.action === "drop-response") {
            // Read the whole answer first: the server finished the work; then the client hears nothing.
            upRes.resume();
            upRes.on("end", () => req.socket.destroy());
            return;
          }
          const relay = () => {
            const headers = { ...upRes.headers };
            if (this.clockSkewMs && headers.date) headers.date = new Date(Date.parse(headers.date) + this.clockSkewMs).toUTCString();
            res.writeHead(upRes.statusCode ?? 502, headers);
            upRes.pipe(res);
          };
          if (rule?.action === "delay-response") setTimeout(relay, rule.ms ?? 0);
          else relay();
        },
      );
      up.on("error", () => req.socket.destroy());
      req.pipe(up);
      // A client that goes away (its own timeout) ends the upstream request too, as with a real server.
      res.on("close", () => up.destroy());
    };
    if (rule?.action === "delay") setTimeout(forward, rule.ms ?? 0);
    else if (rule?.action === "hold") this.heldBack.push(forward);
    else forward();
  }
}

/** A throwaway CA in `dir`/own-ca (for the impostor). */
function ownCa(dir: string): string {
  const caDir = join(dir, "own-ca");
  spawnSync("mkdir", ["-p", caDir]);
  const r = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=impostor-ca"],
    { cwd: caDir, encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`openssl req (own CA) failed: ${r.stderr}`);
  return caDir;
}

/** A key and a certificate for 127.0.0.1 signed by the test CA in `pkiDir` (openssl, as testenv.sh does). */
function issueCertificate(dir: string, pkiDir: string): { key: Buffer; cert: Buffer } {
  const ext = join(dir, "ext.cnf");
  writeFileSync(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const run = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "proxy.key", "-out", "proxy.csr", "-subj", "/CN=berth-fault-proxy"]);
  run([
    "x509",
    "-req",
    "-in",
    "proxy.csr",
    "-CA",
    join(pkiDir, "ca.crt"),
    "-CAkey",
    join(pkiDir, "ca.key"),
    "-CAcreateserial",
    "-CAserial",
    join(dir, "ca.srl"),
    "-out",
    "proxy.crt",
    "-days",
    "2",
    "-extfile",
    ext,
  ]);
  return { key: readFileSync(join(dir, "proxy.key")), cert: readFileSync(join(dir, "proxy.crt")) };
}
