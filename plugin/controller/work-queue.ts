/**
 * The controller's work: keys ("claim:NAME", "pod:NS/NAME", "pool:NAME", ...)
 * handled one at a time, each key at most once in the queue, now, at a time
 * on the API server's clock, or coalesced over a window. Work is done only
 * while `mayWork` says so (the leader); a follower drops it, and the next
 * leader's full scan catches up.
 */
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import { NotLeaderError } from "./leader.ts";

export class WorkQueue {
  private readonly queue = new Set<string>();
  private readonly due = new Set<string>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private draining = false;
  private stopped = false;

  constructor(
    private readonly handle: (key: string) => Promise<void>,
    private readonly mayWork: () => boolean,
    private readonly serverNow: () => number,
    private readonly log: Logger,
  ) {}

  /** Handles `key` as soon as the keys ahead of it are done. */
  enqueue(key: string): void {
    if (this.stopped) return;
    this.queue.add(key);
    if (!this.draining) void this.drain();
  }

  /** Handles `key` at `atServerMs` (the API server's clock). */
  at(key: string, atServerMs: number): void {
    this.timer(() => this.enqueue(key), atServerMs - this.serverNow());
  }

  /**
   * Handles `key` once `windowMs` from now, however often it is asked for in
   * between: a burst costs one handling per window. Not a trailing debounce: a
   * steady stream of requests still gets one every window.
   */
  coalesce(key: string, windowMs: number): void {
    if (this.stopped || this.due.has(key)) return;
    this.due.add(key);
    this.timer(() => {
      this.due.delete(key);
      this.enqueue(key);
    }, windowMs);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
  }

  private timer(fn: () => void, ms: number): void {
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        fn();
      },
      Math.min(2 ** 31 - 1, Math.max(0, ms)),
    );
    this.timers.add(t);
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.size) {
        const key = this.queue.values().next().value as string;
        this.queue.delete(key);
        if (!this.mayWork()) continue;
        await this.handle(key).catch((err) => {
          if (isKind(err, NotLeaderError)) return;
          this.log.warn("reconcile failed; retried on the next scan", { key, error: (err as Error).message });
        });
      }
    } finally {
      this.draining = false;
    }
  }
}
