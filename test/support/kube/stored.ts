/**
 * An object as the API server returns it: the product's own type
 * (plugin/kube/kube-api.ts), with what the server always sets required, so
 * a test reads `claim.metadata.uid` without a check the server makes moot.
 * A test that reads fields the product does not model extends the type with
 * `&` where it reads them, rather than re-declaring the object.
 */
import type { ObjectMeta, PodObject } from "../../../plugin/kube/kube-api.ts";

/** The product's object type, with the metadata the server sets on every stored object. */
export type Stored<T extends { metadata: ObjectMeta }> = T & {
  metadata: Required<Pick<ObjectMeta, "uid" | "resourceVersion" | "creationTimestamp">>;
};

/** A stored pod: in its namespace, and its spec always there (berth reads only nodeName of it). */
export type StoredPod = Stored<PodObject> & { metadata: { namespace: string }; spec: NonNullable<PodObject["spec"]> };
