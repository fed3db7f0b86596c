/**
 * The modules the binary loads only when a command needs them: cluster mode,
 * the controller, the installer, and @kubernetes/client-node's wire. Bundled
 * into the main entry, the Kubernetes client cost every local-mode start ~5 ms
 * even unevaluated, and the installer's node:crypto ~3 ms (both measured), so
 * each is an entry of its own in the binary, imported by a specifier the
 * bundler cannot fold.
 *
 * This list is the one place they are named: scripts/build.ts compiles each
 * as an entry, and test/unit/layers.test.ts checks every lazy import against
 * the layers as it checks static ones. A lazily loaded module that is not
 * listed here can be neither built nor imported.
 */

/** Each lazy entry's path from plugin/. */
export const LAZY_ENTRIES = {
  cluster: "cluster/cluster-commands.ts",
  // The controller, `berth check` and `berth adopt`, which share nearly all their code: one entry, one copy of it.
  operator: "operator-commands.ts",
  install: "install/install.ts",
  clientNodeWire: "kube/client-node-wire.ts",
} as const;

export type LazyEntry = keyof typeof LAZY_ENTRIES;

/**
 * The specifier that imports `entry` from a module at plugin/'s root
 * (`depth` 0, as main.ts) or one folder below it (`depth` 1, as
 * kube/open-transport.ts). In the binary a relative specifier resolves from
 * the entry the importing code was bundled into, which sits where its source
 * does. Built by a join, so the bundler leaves it alone.
 */
export function lazySpecifier(entry: LazyEntry, depth: 0 | 1): string {
  return [depth === 0 ? "." : "..", ...LAZY_ENTRIES[entry].split("/")].join("/");
}
