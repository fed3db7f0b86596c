/**
 * The API server as the controller's logic writes to it: every write
 * (deleting claims, endpoint edits, pool finalizer and status patches,
 * events) first checks, right before it is sent, that this replica still
 * leads; otherwise it throws NotLeaderError and nothing is sent. Reads pass
 * through. The Lease itself is written by the elector on the unguarded API.
 */
import type { ControllerApi } from "../kube/controller-api.ts";

/** The methods of ControllerApi that change something on the API server (the Lease's excepted). */
const WRITES = new Set<keyof ControllerApi>([
  "createClaim",
  "updateClaim",
  "deleteClaim",
  "deleteClaimIfUnchanged",
  "createEndpoint",
  "updateEndpoint",
  "deleteEndpoint",
  "patchPoolStatus",
  "setPoolFinalizers",
  "recordEvent",
  "updateIpamClaimStatus",
]);

/** `api` with every write preceded by `check(what)`, which throws to stop it. */
export function guardWrites(api: ControllerApi, check: (what: string) => void): ControllerApi {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (!WRITES.has(prop as keyof ControllerApi)) return value.bind(target);
      return (...args: unknown[]) => {
        try {
          check(String(prop));
        } catch (err) {
          return Promise.reject(err);
        }
        return value.apply(target, args);
      };
    },
  });
}
