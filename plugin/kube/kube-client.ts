/**
 * KubeApi over @kubernetes/client-node. Loaded only in cluster mode (dynamic
 * import), so local mode never pays for the client's start-up.
 */
import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Health,
  KubeConfig,
  PatchStrategy,
  ServerConfiguration,
  Watch,
  createConfiguration,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { ControllerApi, LeaseObject, WatchKind } from "./controller-api.ts";
import { BERTH_API_VERSION as BERTH_VERSION, BERTH_GROUP, CLAIM_PLURAL, ENDPOINT_PLURAL, POOL_GROUP, POOL_LABEL, POOL_PLURAL, POOL_VERSION, labelValue } from "./crd.ts";
import type { ClaimObject, EndpointObject, KubeApi, NamedObject, PodObject, PoolObject, StatefulSetObject } from "./kube-api.ts";
import { KubeConflictError, KubeRequestError, KubeUnreachableError } from "./kube-errors.ts";

export interface KubeClientOptions {
  /** Per-request timeout. */
  requestTimeoutMs: number;
}

/** Reads the kubeconfig file (throws if it cannot) and returns a KubeApi. */
export function createKubeClient(kubeconfigPath: string, options: KubeClientOptions): KubeApi {
  return createControllerClient(kubeconfigPath, options);
}

const WATCH_PATHS: Record<WatchKind, string> = {
  pods: "/api/v1/pods",
  statefulsets: "/apis/apps/v1/statefulsets",
  claims: `/apis/${BERTH_GROUP}/${BERTH_VERSION}/${CLAIM_PLURAL}`,
  endpoints: `/apis/${BERTH_GROUP}/${BERTH_VERSION}/${ENDPOINT_PLURAL}`,
  pools: `/apis/${POOL_GROUP}/${POOL_VERSION}/${POOL_PLURAL}`,
};

/** The full client: the plugin's KubeApi plus what the controller needs. No path: in-cluster configuration. */
export function createControllerClient(kubeconfigPath: string | undefined, options: KubeClientOptions): ControllerApi {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromCluster();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig ${kubeconfigPath ?? "(in-cluster)"} names no current cluster`);
  const server = cluster.server;
  // Every request carries its own deadline: a hung API server must not hang the runtime.
  const config = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        pre: async (ctx) => {
          ctx.setSignal(AbortSignal.timeout(options.requestTimeoutMs) as never);
          return ctx;
        },
        post: async (rsp) => rsp,
      },
    ],
  });
  const core = new CoreV1Api(config);
  const coordination = new CoordinationV1Api(config);
  const apps = new AppsV1Api(config);
  const custom = new CustomObjectsApi(config);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

  /** Runs a call; maps transport failures and HTTP errors to berth's error kinds. */
  async function call<T>(what: string, fn: () => Promise<T>, notFound?: { value: T }): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ApiException) {
        if (err.code === 404 && notFound) return notFound.value;
        const reason = apiReason(err);
        if (err.code === 409) throw new KubeConflictError(`${what}: ${reason}`, { cause: err });
        // A starting API server answers 403 until its authorizer has synced: that is "try again", not RBAC.
        if (err.code === 403 && !(await ready())) {
          throw new KubeUnreachableError(server, `${what}: API server ${server} is not ready yet (403 while starting: ${reason})`, { cause: err });
        }
        if (err.code >= 500 || err.code === 429) throw new KubeUnreachableError(server, `${what}: API server ${server} answered ${err.code}: ${reason}`, { cause: err });
        throw new KubeRequestError(err.code, `${what}: ${err.code} ${reason}`, { cause: err });
      }
      const e = err as Error & { code?: string; type?: string };
      const cause = e.name === "AbortError" || e.type === "aborted" ? `no answer within ${options.requestTimeoutMs} ms` : `${e.code ?? e.name}: ${e.message}`;
      throw new KubeUnreachableError(server, `${what}: API server ${server} unreachable (${cause})`, { cause: err });
    }
  }

  const plain = <T>(o: unknown) => JSON.parse(JSON.stringify(o)) as T;

  /** Whether the API server says it is ready (/readyz is readable by any authenticated user). */
  async function ready(): Promise<boolean> {
    try {
      return await new Health(kc).readyz({ timeout: 2000 });
    } catch {
      return false;
    }
  }

  return {
    server,
    getPod: (namespace, name) => call(`get pod ${namespace}/${name}`, async () => plain<PodObject>(await core.readNamespacedPod({ namespace, name })), { value: undefined }),
    getNamespace: (name) => call(`get namespace ${name}`, async () => plain<NamedObject>(await core.readNamespace({ name })), { value: undefined }),
    getNode: (name) => call(`get node ${name}`, async () => plain<NamedObject>(await core.readNode({ name })), { value: undefined }),
    getStatefulSet: (namespace, name) =>
      call(`get statefulset ${namespace}/${name}`, async () => plain<StatefulSetObject>(await apps.readNamespacedStatefulSet({ namespace, name })), { value: undefined }),
    getPool: (name) =>
      call(`get spiderippool ${name}`, async () => (await custom.getClusterCustomObject({ group: POOL_GROUP, version: POOL_VERSION, plural: POOL_PLURAL, name })) as PoolObject, { value: undefined }),
    listPools: () =>
      call("list spiderippools", async () => ((await custom.listClusterCustomObject({ group: POOL_GROUP, version: POOL_VERSION, plural: POOL_PLURAL })) as { items: PoolObject[] }).items),
    getClaim: (name) =>
      call(`get berthipclaim ${name}`, async () => (await custom.getClusterCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL, name })) as ClaimObject, { value: undefined }),
    // Not fresh: served from the API server's watch cache ("0"). From etcd, a label-selected LIST reads
    // every claim in the cluster (measured: 8 s for a pool with no claims while the cluster held
    // 59,000). Fresh (counts): a consistent read from etcd; a 1.20 watch cache cannot be asked to catch
    // up with a revision when claims are idle (504 "Too large resource version").
    listClaims: (pool, fresh = false) =>
      call(`list berthipclaims of pool ${pool}`, async () => {
        const list = (await custom.listClusterCustomObject({
          group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL, labelSelector: `${POOL_LABEL}=${labelValue(pool)}`,
          ...(fresh ? {} : { resourceVersion: "0" }),
        })) as { items: ClaimObject[] };
        return list.items.filter((c) => c.spec.pool === pool); // a cut label may be shared by two long pool names
      }),
    createClaim: (claim) =>
      call(`create berthipclaim ${claim.metadata.name}`, async () =>
        (await custom.createClusterCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL, body: { apiVersion: `${BERTH_GROUP}/${BERTH_VERSION}`, kind: "BerthIPClaim", ...claim } })) as ClaimObject),
    updateClaim: (claim) =>
      call(`update berthipclaim ${claim.metadata.name}`, async () =>
        (await custom.replaceClusterCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL, name: claim.metadata.name, body: { apiVersion: `${BERTH_GROUP}/${BERTH_VERSION}`, kind: "BerthIPClaim", ...claim } })) as ClaimObject),
    deleteClaim: async (name, uid) => {
      const gone = await call(
        `delete berthipclaim ${name}`,
        async () => {
          await custom.deleteClusterCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL, name, body: { preconditions: { uid } } });
          return false;
        },
        { value: true },
      );
      return !gone;
    },
    getEndpoint: (namespace, name) =>
      call(`get berthendpoint ${namespace}/${name}`, async () =>
        (await custom.getNamespacedCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: ENDPOINT_PLURAL, namespace, name })) as EndpointObject, { value: undefined }),
    createEndpoint: (ep) =>
      call(`create berthendpoint ${ep.metadata.namespace}/${ep.metadata.name}`, async () =>
        (await custom.createNamespacedCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: ENDPOINT_PLURAL, namespace: ep.metadata.namespace!, body: { apiVersion: `${BERTH_GROUP}/${BERTH_VERSION}`, kind: "BerthEndpoint", ...ep } })) as EndpointObject),
    updateEndpoint: (ep) =>
      call(`update berthendpoint ${ep.metadata.namespace}/${ep.metadata.name}`, async () =>
        (await custom.replaceNamespacedCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: ENDPOINT_PLURAL, namespace: ep.metadata.namespace!, name: ep.metadata.name, body: { apiVersion: `${BERTH_GROUP}/${BERTH_VERSION}`, kind: "BerthEndpoint", ...ep } })) as EndpointObject),
    deleteEndpoint: async (namespace, name, uid, resourceVersion) => {
      const gone = await call(
        `delete berthendpoint ${namespace}/${name}`,
        async () => {
          await custom.deleteNamespacedCustomObject({
            group: BERTH_GROUP, version: BERTH_VERSION, plural: ENDPOINT_PLURAL, namespace, name,
            body: { preconditions: resourceVersion ? { uid, resourceVersion } : { uid } },
          });
          return false;
        },
        { value: true },
      );
      return !gone;
    },
    listAllClaims: () =>
      call("list berthipclaims", async () => ((await custom.listClusterCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL })) as { items: ClaimObject[] }).items),
    listAllPods: () => call("list pods", async () => plain<{ items: PodObject[] }>(await core.listPodForAllNamespaces({})).items),
    listAllStatefulSets: () => call("list statefulsets", async () => plain<{ items: StatefulSetObject[] }>(await apps.listStatefulSetForAllNamespaces({})).items),
    listAllEndpoints: () =>
      call("list berthendpoints", async () => ((await custom.listClusterCustomObject({ group: BERTH_GROUP, version: BERTH_VERSION, plural: ENDPOINT_PLURAL })) as { items: EndpointObject[] }).items),
    deleteClaimIfUnchanged: async (claim) => {
      const gone = await call(
        `delete berthipclaim ${claim.metadata.name}`,
        async () => {
          await custom.deleteClusterCustomObject({
            group: BERTH_GROUP, version: BERTH_VERSION, plural: CLAIM_PLURAL, name: claim.metadata.name,
            body: { preconditions: { uid: claim.metadata.uid, resourceVersion: claim.metadata.resourceVersion } },
          });
          return false;
        },
        { value: true },
      );
      return !gone;
    },
    setPoolFinalizers: async (pool, finalizers) => {
      await call(`set finalizers of spiderippool ${pool.metadata.name}`, () =>
        custom.patchClusterCustomObject({
          group: POOL_GROUP, version: POOL_VERSION, plural: POOL_PLURAL, name: pool.metadata.name,
          body: { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers } },
        }, mergePatch));
    },
    // Leases go through the raw-JSON custom-objects path: the typed client writes MicroTime with
    // millisecond precision, which a 1.20 API server rejects (it wants six fractional digits).
    getLease: (namespace, name) =>
      call(`get lease ${namespace}/${name}`, async () => (await custom.getNamespacedCustomObject({ ...LEASES, namespace, name })) as LeaseObject, { value: undefined }),
    createLease: (lease) =>
      call(`create lease ${lease.metadata.namespace}/${lease.metadata.name}`, async () =>
        (await custom.createNamespacedCustomObject({ ...LEASES, namespace: lease.metadata.namespace!, body: leaseBody(lease) })) as LeaseObject),
    updateLease: (lease) =>
      call(`update lease ${lease.metadata.namespace}/${lease.metadata.name}`, async () =>
        (await custom.replaceNamespacedCustomObject({ ...LEASES, namespace: lease.metadata.namespace!, name: lease.metadata.name, body: leaseBody(lease) })) as LeaseObject),
    recordEvent: async (target, type, reason, message) => {
      const now = new Date();
      await call(`record event on ${target.kind} ${target.namespace}/${target.name}`, () =>
        core.createNamespacedEvent({
          namespace: target.namespace,
          body: {
            metadata: { generateName: `${target.name}.`, namespace: target.namespace },
            involvedObject: { kind: target.kind, apiVersion: target.apiVersion, namespace: target.namespace, name: target.name, uid: target.uid },
            type, reason, message, firstTimestamp: now, lastTimestamp: now, count: 1,
            source: { component: "berth-controller" }, reportingComponent: "berth-controller", reportingInstance: "berth-controller",
          },
        }));
    },
    watch: (kind, onEvent) =>
      new Promise<void>((resolve) => {
        const w = new Watch(kc);
        w.watch(WATCH_PATHS[kind], { allowWatchBookmarks: false }, (type, obj) => onEvent(type, obj), () => resolve()).catch(() => resolve());
      }),
    patchPoolStatus: async (name, resourceVersion, status) => {
      // resourceVersion in a patch is a precondition: 409 Conflict if the pool moved on meanwhile.
      await call(`patch spiderippool ${name} status`, () =>
        custom.patchClusterCustomObjectStatus({ group: POOL_GROUP, version: POOL_VERSION, plural: POOL_PLURAL, name, body: { metadata: { resourceVersion }, status } }, mergePatch));
    },
  };
}

const LEASES = { group: "coordination.k8s.io", version: "v1", plural: "leases" };

/** A Lease body with MicroTime fields in the form the API server parses: six fractional digits. */
function leaseBody(lease: LeaseObject): object {
  const spec = { ...lease.spec } as Record<string, unknown>;
  for (const k of ["acquireTime", "renewTime"]) {
    if (typeof spec[k] === "string") spec[k] = new Date(spec[k] as string).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  }
  return { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: lease.metadata, spec };
}

function apiReason(err: ApiException<unknown>): string {
  const body = err.body;
  if (typeof body === "string") {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      // not JSON
    }
    return body.slice(0, 300);
  }
  return (body as { message?: string })?.message ?? err.message;
}
