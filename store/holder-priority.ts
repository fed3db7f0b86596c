/**
 * Scheduling priority for the process that holds the database's write lock.
 *
 * When a node starts a hundred pods at once, a hundred plugin processes
 * compete for a few cores, and they all need the same write lock for a
 * millisecond or two. A holder that the kernel preempts (or that sleeps in
 * the commit's fsync and then waits its turn behind 99 runnable processes)
 * keeps everyone else waiting and polling: measured on 2 cores, a lock that
 * needs ~1 ms of CPU was held for 50–170 ms at the median, and the waiters'
 * polling doubled the CPU per ADD. Raising the holder's priority for the
 * length of its transaction, and giving it back right after, lets it finish
 * first; this is priority boosting by hand, since file locks have no
 * priority inheritance.
 *
 * Lowering a nice value needs CAP_SYS_NICE, which CNI plugins have (the
 * runtime runs them as root). Without it the first attempt fails and the
 * process stops trying: the lock works the same, only slower under bursts.
 */
import { getPriority, setPriority } from "node:os";

/** The nice value a lock holder runs at: the highest priority short of real-time classes. */
export const HOLDER_NICE = -19;

/** What raising and restoring needs from the OS; node:os by default, replaceable in tests. */
export interface PriorityOs {
  get(): number;
  set(nice: number): void;
}

const processPriority: PriorityOs = {
  get: () => getPriority(0),
  set: (nice) => setPriority(0, nice),
};

/** Raises this process's priority while it holds the write lock; a no-op where the OS refuses. */
export class HolderPriority {
  private refused = false;

  constructor(private readonly os: PriorityOs = processPriority) {}

  /**
   * Raises the priority; returns the nice value to restore, or undefined
   * when nothing changed (already that high, or not permitted).
   */
  raise(): number | undefined {
    if (this.refused) return undefined;
    try {
      const before = this.os.get();
      if (before <= HOLDER_NICE) return undefined;
      this.os.set(HOLDER_NICE);
      return before;
    } catch {
      this.refused = true;
      return undefined;
    }
  }

  /** Gives back the priority `raise` returned (the runtime's own nice value, not a guess). */
  restore(before: number | undefined): void {
    if (before === undefined) return;
    try {
      this.os.set(before);
    } catch {
      // Raising back a nice value is always permitted; a failure here leaves only a short-lived process favoured.
    }
  }
}
