/**
 * Entry of `berth controller`: a separate entry point of the binary (like the
 * cluster commands), so the plugin never loads the controller or its client.
 */
import { hostname } from "node:os";
import { createControllerClient } from "../kube/controller-client.ts";
import type { Logger } from "../support/logger.ts";
import { createLogger } from "../support/logger.ts";
import { Controller, type ControllerOptions } from "./controller.ts";

export interface ControllerArgs {
  kubeconfig?: string;
  listen?: string;
  resyncSeconds?: number;
  leaseNamespace?: string;
  leaseName?: string;
  identity?: string;
  addTimeoutSeconds?: number;
  releaseTerminatingOnUnreadyNodes?: boolean;
  listPageSize?: number;
  checkIntervalSeconds?: number;
  logLevel?: string;
}

/** Runs until SIGTERM/SIGINT; returns the exit code. */
export async function controllerMain(args: ControllerArgs): Promise<number> {
  // The binary starts with the JIT reluctant to compile (--compile-jit-policy in the build script): right
  // for a plugin process that lives 50 ms, wrong for the controller's long-running scans.
  (globalThis as { Bun?: { unsafe?: { setJITPolicy?: (scale: number) => void } } }).Bun?.unsafe?.setJITPolicy?.(1);
  const log = createLogger((args.logLevel as "info") ?? "info", undefined, { component: "controller" });
  const opts: ControllerOptions = {
    kubeconfig: args.kubeconfig,
    listen: args.listen ?? "0.0.0.0:9542",
    resyncMs: (args.resyncSeconds ?? 60) * 1000,
    leaseNamespace: args.leaseNamespace ?? "kube-system",
    leaseName: args.leaseName ?? "berth-controller",
    identity: args.identity ?? `${hostname()}-${process.pid}`,
    addTimeoutMs: (args.addTimeoutSeconds ?? 30) * 1000,
    graceMarginMs: 5000,
    listPageSize: args.listPageSize ?? 500,
    checkIntervalMs: (args.checkIntervalSeconds ?? 300) * 1000,
  };
  const controller = createController(opts, log);
  const stop = () => controller.stop();
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  log.info("starting", {
    identity: opts.identity,
    lease: `${opts.leaseNamespace}/${opts.leaseName}`,
    resyncSeconds: opts.resyncMs / 1000,
    addTimeoutSeconds: opts.addTimeoutMs / 1000,
    listPageSize: opts.listPageSize,
  });
  if (args.releaseTerminatingOnUnreadyNodes) {
    // 0.4 released a Terminating pod's address past its grace period, on a node not Ready with this flag. A pod
    // still Terminating has not had its DEL, wherever it runs: its address is held until its pod object is gone.
    log.warn(
      "--release-terminating-on-unready-nodes has no effect since 0.5 and will be refused in 0.6: a Terminating pod keeps its address until its DEL runs or its pod object is gone (force-delete it, or taint a dead node node.kubernetes.io/out-of-service); see docs/safety.md",
      {},
    );
  }
  await controller.run();
  log.info("stopped");
  return controller.failed ? 1 : 0;
}

/** Builds a controller from options (kubeconfig file, or in-cluster configuration when none). */
export function createController(opts: ControllerOptions, log: Logger): Controller {
  // Every write but the Lease's checks leadership in the transport too, as late as it can: after the
  // request's credentials are applied, right before it is sent.
  let controller: Controller | undefined;
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.leaseNamespace)}/leases`;
  const api = createControllerClient(opts.kubeconfig, {
    requestTimeoutMs: 10_000,
    beforeWrite: (what, _method, path) => {
      if (!path.startsWith(leasePath)) controller?.checkLeader(what);
    },
  });
  controller = new Controller(api, opts, log);
  return controller;
}
