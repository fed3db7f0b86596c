/**
 * HTTP to the API server without @kubernetes/client-node, for a kubeconfig
 * the small reader understood (kubeconfig-reader.ts). In the compiled binary
 * it is Bun's native fetch, which keeps the connection alive and reuses it
 * for the next request with the same TLS settings (one TLS handshake for a
 * sequential ADD, measured); under Node (development, tests) node:https with
 * a keep-alive agent. The server is always verified: against the kubeconfig's
 * CA, else the system's, whatever NODE_TLS_REJECT_UNAUTHORIZED says.
 *
 * node:https is imported only under Node: in the compiled binary merely
 * importing it costs ~20 ms of CPU (bun's node:http layer, measured).
 */

import type { Wire, WireAnswer, WireRequest } from "./kube-request.ts";
import type { DirectConfig } from "./kubeconfig-reader.ts";

type BunFetch = (url: string, init: RequestInit & { tls?: object }) => Promise<Response>;

/** The wire for `config`: credentials from the kubeconfig, the runtime's own HTTP client. */
export function directWire(config: DirectConfig): Wire {
  const tls = {
    ca: config.ca,
    cert: config.cert,
    key: config.key,
    rejectUnauthorized: true,
    ...(config.serverName ? { serverName: config.serverName } : {}),
  };
  const underBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  const exchange = underBun ? bunExchange(tls) : nodeExchange(tls);
  return {
    server: config.server,
    send(req, beforeSend) {
      const url = new URL(config.server + req.path); // as client-node: the server URL may carry a path prefix
      for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
      const headers = { ...req.headers };
      const token = config.token(); // per request: a rotated token file is read again
      if (token) headers.Authorization = `Bearer ${token}`;
      const signal = AbortSignal.timeout(req.timeoutMs);
      beforeSend();
      return exchange(url, { ...req, headers }, signal);
    },
  };
}

type Exchange = (url: URL, req: WireRequest, signal: AbortSignal) => Promise<WireAnswer>;

function bunExchange(tls: object): Exchange {
  const bunFetch = fetch as unknown as BunFetch;
  return async (url, req, signal) => {
    const rsp = await bunFetch(url.toString(), { method: req.method, headers: req.headers, body: req.body, signal, tls });
    return { status: rsp.status, date: rsp.headers.get("date") ?? undefined, text: await rsp.text() };
  };
}

function nodeExchange(tls: { ca?: string; cert?: string; key?: string; serverName?: string }): Exchange {
  const https = import("node:https");
  let agent: import("node:https").Agent | undefined;
  return async (url, req, signal) => {
    const { Agent, request } = await https;
    agent ??= new Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.serverName, rejectUnauthorized: true });
    return new Promise<WireAnswer>((resolve, reject) => {
      // Past the deadline the error is the signal's own (a TimeoutError), however far the exchange had got.
      const fail = (err: unknown) => reject(signal.aborted ? signal.reason : err);
      const r = request(url, { method: req.method, headers: req.headers, agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", fail);
        res.on("aborted", () => fail(new Error("the connection closed before the whole answer arrived")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, date: res.headers.date, text: Buffer.concat(chunks).toString("utf8") }));
      });
      r.on("error", fail);
      r.end(req.body);
    });
  };
}
