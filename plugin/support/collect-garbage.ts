/**
 * A full garbage collection, when running under Bun (the binary). A scan
 * parses page after page of every list; the engine's heap would otherwise
 * grow with that garbage well past the live data, towards the Deployment's
 * memory limit (a forced collection halved the heap after a 5,000-claim
 * scan). Under Node (the unit tests) it does nothing.
 */
export function collectGarbage(): void {
  (globalThis as { Bun?: { gc(sync: boolean): void } }).Bun?.gc(true);
}
