/** Keeping one watch of a kind open for as long as the controller runs. */
import type { ControllerApi, WatchKind } from "../kube/controller-api.ts";
import type { ObjectMeta } from "../kube/kube-api.ts";

export interface WatchLoopHost {
  api: ControllerApi;
  stopped(): boolean;
  sleep(ms: number): Promise<void>;
  onEvent(kind: WatchKind, type: string, obj: { metadata: ObjectMeta }): void;
  /** The server forgot the version a watch of `kind` was at (410 Gone): events were missed. */
  onMissed(kind: WatchKind): void;
  /** The watch of `kind` has its first version: every change after it reaches `onEvent`. */
  onStarted?(kind: WatchKind): void;
}

/**
 * Keeps one watch of `kind` open, reopening it where it ended. Kinds with
 * many objects are watched from the present (`replay` false): the full scans
 * find what exists, and a replay of every object (at start, and each time the
 * server ends a watch) was the controller's biggest burst of memory on a big
 * cluster. When the server has forgotten the version (410 Gone), events were
 * missed and the host is told.
 */
export async function watchForever(host: WatchLoopHost, kind: WatchKind, replay = false): Promise<void> {
  let rv: string | undefined;
  let missed = false;
  if (replay) host.onStarted?.(kind);
  while (!host.stopped()) {
    if (rv === undefined && !replay) {
      rv = await host.api.collectionVersion(kind).catch(() => undefined);
      if (rv === undefined) {
        await host.sleep(1000);
        continue;
      }
      if (missed) host.onMissed(kind);
      host.onStarted?.(kind);
    }
    rv = (await host.api.watch(kind, (type, obj) => host.onEvent(kind, type, obj), rv).catch(() => ({ resourceVersion: rv }))).resourceVersion;
    missed = rv === undefined;
    await host.sleep(1000);
  }
}
