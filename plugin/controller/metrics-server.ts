/** The controller's /healthz and /metrics. */
import { createServer, type Server } from "node:http";
import type { Logger } from "../support/logger.ts";

/**
 * Serves `/healthz` (200 while the process runs) and `/metrics` (`render()`)
 * on `listen` (host:port). `onFail` is called when it cannot listen.
 */
export function serveMetrics(listen: string, render: () => string, log: Logger, onFail: () => void): Server {
  const [host, port] = splitHostPort(listen);
  const server = createServer((req, res) => {
    if (req.url === "/healthz") res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    else if (req.url === "/metrics") res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(render());
    else res.writeHead(404).end();
  });
  server.on("error", (err) => {
    log.error("cannot serve /healthz and /metrics; stopping", { listen, error: err.message });
    onFail();
  });
  server.listen(port, host, () => log.info("serving /healthz and /metrics", { listen }));
  return server;
}

function splitHostPort(listen: string): [string, number] {
  const i = listen.lastIndexOf(":");
  return [listen.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0", Number(listen.slice(i + 1))];
}
