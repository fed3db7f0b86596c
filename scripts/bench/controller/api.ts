/**
 * The controller section as the admin: the tests' admin client, plus what
 * this bench reads (claims, GET counts from the API server's metrics, the
 * controller lease's holder) and the finalizers it strips at the end.
 */
import { CLAIMS_PATH as CLAIMS, POOL_FINALIZER as FINALIZER, POOL_LABEL, POOLS_PATH as POOLS } from "../../../plugin/kube/crd.ts";
import type { ClaimObject, PoolObject } from "../../../plugin/kube/kube-api.ts";
import { AdminClient } from "../../../test/support/kube/admin-client.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import { claimName, PAR, POOL } from "./config.ts";

/** The tests' admin client, plus what this bench reads. */
export class Api extends AdminClient {
  constructor() {
    super({ maxSockets: PAR, timeoutMs: 60_000, retryServerErrors: true });
  }

  async claimExists(address: string): Promise<boolean> {
    return (await this.request("GET", `${CLAIMS}/${claimName(address)}`)).status === 200;
  }

  async poolClaims(pool = POOL): Promise<ClaimObject[]> {
    const l = await this.list<ClaimObject>(CLAIMS, { labelSelector: `${POOL_LABEL}=${pool}` });
    return l.filter((c) => c.spec.pool === pool);
  }

  /**
   * Reads of single objects per resource, from the API server's own metrics (any response code). A 1.20
   * API server counts a GET of a namespaced custom resource (a BerthEndpoint) as verb LIST, scope
   * namespace; those are counted too (nothing lists endpoints per namespace while this is measured).
   */
  async getCounts(): Promise<Record<string, number>> {
    const text = (await this.must<string>("GET", "/metrics")) as string;
    const out: Record<string, number> = {};
    for (const line of text.split("\n")) {
      if (!line.startsWith("apiserver_request_total{")) continue;
      const single = line.includes('verb="GET"') && line.includes('scope="resource"');
      const crGet = line.includes('resource="berthendpoints"') && line.includes('verb="LIST"') && line.includes('scope="namespace"');
      if (!single && !crGet) continue;
      const res = /resource="([^"]*)"/.exec(line)?.[1] ?? "";
      out[res] = (out[res] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return out;
  }

  /** The controller lease's live holder, if any. */
  async leaseHolder(): Promise<string | undefined> {
    const r = await this.request("GET", path("leases", { ns: "kube-system", name: "berth-controller" }));
    if (r.status !== 200) return undefined;
    const s = r.body.spec ?? {};
    if (!s.holderIdentity) return undefined;
    return Date.now() <= Date.parse(s.renewTime ?? 0) + (s.leaseDurationSeconds ?? 8) * 1000 ? s.holderIdentity : undefined;
  }

  async stripFinalizers(): Promise<void> {
    for (const p of await this.list<PoolObject>(POOLS)) {
      const i = p.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
      if (i < 0) continue;
      await this.patch(
        `${POOLS}/${p.metadata.name}`,
        [
          { op: "test", path: `/metadata/finalizers/${i}`, value: FINALIZER },
          { op: "remove", path: `/metadata/finalizers/${i}` },
        ],
        "json",
        [404, 422],
      );
    }
  }
}
