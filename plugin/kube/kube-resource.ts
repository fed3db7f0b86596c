/**
 * One generic, typed view of a Kubernetes kind: get, list, create, replace,
 * delete and merge-patch over the transport's single `request`. Every kind
 * berth touches (core, apps, coordination, Spiderpool's and its own) is one
 * `resource(...)` call, and every message names the verb, the kind and the
 * object the same way ("get pod ns/name", "create berthipclaim v4-...").
 */

import { isKind } from "../support/errors.ts";
import { KubeRequestError } from "./kube-errors.ts";
import type { KubeTransport, Query } from "./kube-request.ts";

/** Where a kind lives on the API server. */
export interface ResourceSpec {
  /** API group; "" for the core group (served under /api). */
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  /** The kind, stamped on created and replaced objects; lower-cased, it names the kind in messages. */
  kind: string;
}

/** Which object: its name, and its namespace when the kind is namespaced. */
export interface ObjectRef {
  name: string;
  namespace?: string;
}

/** Delete preconditions: the server deletes only an object that still has these. */
export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

/** What every object has: metadata with (unless the server is to generate it) a name. */
export interface HasMetadata {
  metadata: { name?: string; generateName?: string; namespace?: string };
}

/** The verbs berth uses on one kind. Answers are the server's JSON, as plain objects. */
export interface Resource<T extends HasMetadata> {
  /** The cluster-wide collection path, e.g. "/api/v1/pods" (lists and watches). */
  readonly path: string;
  /** The object, or undefined when there is none (404). */
  get(ref: ObjectRef): Promise<T | undefined>;
  /** Every object across namespaces; `what` replaces the default message label "list <plural>". */
  list(query?: Query, what?: string): Promise<T[]>;
  /**
   * Every object across namespaces, in pages of at most `pageSize`
   * (`limit`/`continue`: one consistent snapshot, each page its own request
   * within the request deadline). `onPage` sees each page as it arrives and
   * keeps what it needs, so the whole collection is never in memory at once.
   * Returns how many requests it took.
   */
  listPages(pageSize: number, onPage: (items: T[]) => void, query?: Query, what?: string): Promise<number>;
  /** Creates the object in its metadata.namespace; KubeConflictError when the name is taken. */
  create(obj: T, what?: string): Promise<T>;
  /** Replaces the object (optimistic when metadata.resourceVersion is set: KubeConflictError if it moved or was deleted). */
  replace(obj: T): Promise<T>;
  /** Deletes the object if it still matches `preconditions`; false when it was already gone. */
  delete(ref: ObjectRef, preconditions: Preconditions): Promise<boolean>;
  /** JSON merge patch of the object, or of its status subresource; a resourceVersion in the patch is a precondition. */
  patch(ref: ObjectRef, body: object, opts?: { status?: boolean; what?: string }): Promise<void>;
}

/** The typed verbs of the kind `spec` describes, over `transport`. */
export function resource<T extends HasMetadata>(transport: KubeTransport, spec: ResourceSpec): Resource<T> {
  const { group, version, plural, namespaced, kind } = spec;
  const apiVersion = group ? `${group}/${version}` : version;
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const noun = kind.toLowerCase();
  const label = (ref: Partial<ObjectRef>) => (namespaced ? `${ref.namespace}/${ref.name}` : ref.name);
  /** The collection (in the ref's namespace when the kind is namespaced), or one object in it. */
  const pathOf = (ref: { namespace?: string }, name?: string) =>
    `${base}${namespaced && ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : ""}/${plural}${name === undefined ? "" : `/${encodeURIComponent(name)}`}`;
  /** What create and replace send: the object with its apiVersion and kind (its own win if set). */
  const typed = (obj: T) => ({ apiVersion, kind, ...obj });
  const request = transport.request.bind(transport);

  return {
    path: `${base}/${plural}`,
    async get(ref) {
      try {
        return await request<T>(`get ${noun} ${label(ref)}`, "GET", pathOf(ref, ref.name));
      } catch (err) {
        if (isKind(err, KubeRequestError) && err.status === 404) return undefined;
        throw err;
      }
    },
    async list(query, what = `list ${plural}`) {
      return (await request<{ items: T[] }>(what, "GET", pathOf({}), undefined, query)).items;
    },
    async listPages(pageSize, onPage, query, what = `list ${plural}`) {
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await request<{ items: T[]; metadata?: { continue?: string } }>(`${what} (page ${pages + 1})`, "GET", pathOf({}), undefined, {
          ...query,
          limit: String(pageSize),
          continue: token,
        });
        pages++;
        onPage(page.items ?? []);
        token = page.metadata?.continue || undefined;
      } while (token);
      return pages;
    },
    create: (obj, what = `create ${noun} ${label(obj.metadata)}`) => request<T>(what, "POST", pathOf(obj.metadata), typed(obj)),
    replace: (obj) => request<T>(`update ${noun} ${label(obj.metadata)}`, "PUT", pathOf(obj.metadata, obj.metadata.name), typed(obj)),
    async delete(ref, preconditions) {
      try {
        await request(`delete ${noun} ${label(ref)}`, "DELETE", pathOf(ref, ref.name), { preconditions });
        return true;
      } catch (err) {
        if (isKind(err, KubeRequestError) && err.status === 404) return false;
        throw err;
      }
    },
    async patch(ref, body, opts = {}) {
      const what = opts.what ?? `patch ${noun} ${label(ref)}${opts.status ? " status" : ""}`;
      await request(what, "PATCH", pathOf(ref, ref.name) + (opts.status ? "/status" : ""), body, undefined, "application/merge-patch+json");
    },
  };
}
