/** Doing many things at once, a bounded number at a time, and waiting for something to become true. */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `fn` over `items` with at most `limit` at a time; results in the order of `items`. */
export async function inBatches<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

export interface WaitOptions {
  /** Default 15 s. */
  timeoutMs?: number;
  /** Default 200 ms. */
  everyMs?: number;
  /** Treat an error thrown by the check as "not yet" (and name the last one on timeout) instead of failing at once. */
  retryErrors?: boolean;
}

/**
 * Polls `fn` (sync or async) until it returns something other than
 * undefined, null or false, and returns that; throws "timed out after N ms
 * waiting for WHAT" otherwise.
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  o: WaitOptions = {},
): Promise<T> {
  const { timeoutMs = 15_000, everyMs = 200, retryErrors = false } = o;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      if (!retryErrors) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}
