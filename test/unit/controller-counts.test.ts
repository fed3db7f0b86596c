/**
 * The controller's pool counts on a fake API server: kept from the watch per
 * pool (no rescan), written once per window, and not lost when claims change
 * while a full scan is listing (the scan's journal). The real control plane
 * is in test/cluster/controller-counts.test.ts.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Controller, POOL_WRITE_WINDOW_MS } from "../../plugin/controller/controller.ts";
import type { ControllerApi, LeaseObject, WatchKind } from "../../plugin/kube/controller-api.ts";
import type { ClaimObject, EndpointObject, PodObject, PoolObject, PoolStatus } from "../../plugin/kube/kube-api.ts";
import { createLogger } from "../../plugin/support/logger.ts";

const t = suite("controller: pool counts");

type OnEvent = (type: string, obj: { metadata: { name: string } }) => void;

/** Just enough of an API server for one controller: a pool, claims held by living pods, a lease, watches. */
class FakeServer {
  pool: PoolObject = { metadata: { name: "p", resourceVersion: "1", finalizers: [] }, spec: { subnet: "10.0.0.0/24", ips: ["10.0.0.1-10.0.0.10"] } };
  claims = new Map<string, ClaimObject>();
  pods = new Map<string, PodObject>();
  lease: LeaseObject | undefined;
  watchers = new Map<WatchKind, OnEvent>();
  statusWrites = 0;
  claimLists = 0;
  /** Runs inside the next LIST of all claims, after its pages were read. */
  duringClaimList: (() => void) | undefined;
  private rv = 10;

  claim(letter: string, address: string): ClaimObject {
    const c: ClaimObject = {
      metadata: { name: `v4-${address.replace(/\./g, "-")}`, uid: `uid-${letter}`, resourceVersion: String(++this.rv), generation: 1 },
      spec: {
        address,
        ipVersion: 4,
        pool: "p",
        podNamespace: "ns",
        podName: letter,
        podUID: `pod-${letter}`,
        containerID: `c-${letter}`,
        interface: "eth0",
        node: "n",
        claimedAt: new Date().toISOString(),
      },
    };
    this.pods.set(letter, { metadata: { name: letter, namespace: "ns", uid: `pod-${letter}` }, spec: { nodeName: "n" }, status: { phase: "Running" } });
    return c;
  }
  /** Adds a claim (and its pod) and tells the claims watch. */
  add(letter: string, address: string): void {
    const c = this.claim(letter, address);
    this.claims.set(c.metadata.name, c);
    this.watchers.get("claims")?.("ADDED", structuredClone(c));
  }
  remove(address: string): void {
    const name = `v4-${address.replace(/\./g, "-")}`;
    const c = this.claims.get(name)!;
    this.claims.delete(name);
    this.watchers.get("claims")?.("DELETED", structuredClone(c));
  }
  endpoint(ns: string, name: string): EndpointObject | undefined {
    const held = [...this.claims.values()].filter((c) => c.spec.podNamespace === ns && c.spec.podName === name);
    if (!held.length) return undefined;
    return {
      metadata: { name, namespace: ns },
      spec: {
        podUID: `pod-${name}`,
        node: "n",
        ownerControllerType: "None",
        ips: held.map((c) => ({ interface: "eth0", ipv4: `${c.spec.address}/24`, ipv4Pool: "p" })),
      },
    };
  }

  api(): ControllerApi {
    const pages = async <T>(items: T[], onPage: (page: T[]) => void) => {
      onPage(structuredClone(items));
      return 1;
    };
    const api: Partial<ControllerApi> = {
      server: "https://fake.invalid",
      serverNow: () => Date.now(),
      getPod: async (_ns, name) => structuredClone(this.pods.get(name)),
      getNode: async (name) => ({ metadata: { name }, status: { conditions: [{ type: "Ready", status: "True" }] } }),
      getStatefulSet: async () => undefined,
      getEndpoint: async (ns, name) => this.endpoint(ns, name),
      getClaim: async (name) => structuredClone(this.claims.get(name)),
      getPool: async (name) => (name === "p" ? structuredClone(this.pool) : undefined),
      listPools: async () => [structuredClone(this.pool)],
      listClaims: async (pool) => [...this.claims.values()].filter((c) => c.spec.pool === pool).map((c) => structuredClone(c)),
      listAllClaims: async (_size, onPage) => {
        this.claimLists++;
        const n = await pages([...this.claims.values()], onPage);
        const during = this.duringClaimList;
        this.duringClaimList = undefined;
        during?.();
        return n;
      },
      listAllPods: (_size, onPage) => pages([...this.pods.values()], onPage),
      listAllStatefulSets: (_size, onPage) => pages([], onPage),
      listAllEndpoints: (_size, onPage) =>
        pages(
          [...this.pods.keys()].map((p) => this.endpoint("ns", p)).filter((e): e is EndpointObject => !!e),
          onPage,
        ),
      listAllNodes: (_size, onPage) => pages([{ metadata: { name: "n" }, status: { conditions: [{ type: "Ready", status: "True" }] } }], onPage),
      setPoolFinalizers: async (_pool, finalizers) => {
        this.pool.metadata.finalizers = finalizers;
        this.pool.metadata.resourceVersion = String(++this.rv);
      },
      patchPoolStatus: async (_name, _rv, status: PoolStatus) => {
        this.statusWrites++;
        this.foreignStatus(status);
      },
      getLease: async () => structuredClone(this.lease),
      createLease: async (lease) => {
        this.lease = { ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease);
      },
      updateLease: async (lease) => {
        this.lease = { ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease);
      },
      recordEvent: async () => undefined,
      watch: (kind, onEvent) => {
        this.watchers.set(kind, onEvent);
        return new Promise<{ resourceVersion?: string }>(() => undefined); // open until the test ends
      },
      collectionVersion: async () => String(this.rv),
    };
    return api as ControllerApi;
  }

  /** A status write, as the controller or an old plugin makes it; the pools watch hears of it. */
  foreignStatus(status: PoolStatus): void {
    this.pool.status = { ...status };
    this.pool.metadata.resourceVersion = String(++this.rv);
    this.watchers.get("pools")?.("MODIFIED", structuredClone(this.pool));
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 3000): Promise<number> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) assert.unreachable(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

function start(server: FakeServer): { controller: Controller; done: Promise<void> } {
  const controller = new Controller(
    server.api(),
    {
      listen: "127.0.0.1:0",
      resyncMs: 600_000,
      leaseNamespace: "kube-system",
      leaseName: "berth-controller",
      identity: "unit",
      addTimeoutMs: 600_000,
      graceMarginMs: 5000,
    },
    createLogger("error"),
  );
  return { controller, done: controller.run() };
}

t("claims that change while a full scan lists are counted (the scan's journal); later changes are written per window", async () => {
  const server = new FakeServer();
  for (const [l, a] of [
    ["a", "10.0.0.1"],
    ["b", "10.0.0.2"],
    ["c", "10.0.0.3"],
  ])
    server.add(l, a);
  // While the first scan lists: two claims are made and one goes, as watch events the snapshot does not hold.
  server.duringClaimList = () => {
    server.add("d", "10.0.0.4");
    server.add("e", "10.0.0.5");
    server.remove("10.0.0.1");
  };
  const { controller, done } = start(server);
  try {
    await until("the first full scan", () => server.claimLists === 1 && server.pool.status !== undefined);
    await until("the count of the claims that exist (b, c, d, e)", () => server.pool.status?.allocatedIPCount === 4);
    assert.equal(server.pool.status, { ipVersion: 4, allocatedIPCount: 4, totalIPCount: 10 });

    // A burst of changes: one write per window, not one per claim, and no LIST.
    const writes = server.statusWrites;
    for (let i = 6; i <= 10; i++) server.add(String.fromCharCode(96 + i), `10.0.0.${i}`);
    const ms = await until("the burst counted", () => server.pool.status?.allocatedIPCount === 9);
    assert.ok(ms >= POOL_WRITE_WINDOW_MS - 50, `written after the window (${ms} ms)`);
    await new Promise((r) => setTimeout(r, POOL_WRITE_WINDOW_MS * 2));
    assert.is(server.statusWrites - writes, 1, "five claim events, one status write");

    // A foreign count (a 0.3.0 plugin's): overwritten within the window.
    server.foreignStatus({ ipVersion: 4, allocatedIPCount: 99, totalIPCount: 10 });
    await until("the controller's count back", () => server.pool.status?.allocatedIPCount === 9);
    server.remove("10.0.0.2");
    await until("a release counted", () => server.pool.status?.allocatedIPCount === 8);
    assert.is(server.claimLists, 1, "no LIST of claims after the first scan");
  } finally {
    controller.stop();
    await done;
  }
});

t.run();
