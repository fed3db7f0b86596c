/**
 * Bounds an ADD in time. The budget (the network's `timeoutSeconds`) protects
 * the runtime against a hung API server while addresses are still being
 * taken; past it, no new step starts and what was taken is given back. Once
 * every address is taken (`commit`), the ADD finishes however late: undoing
 * claims the API server has accepted because this process waited for a CPU
 * (a node booting a hundred pods at once) only makes the retry do it all
 * again. Each request keeps its own time limit, and a late ADD re-reads its
 * claims before it answers (cluster-add.ts), so finishing late is safe.
 *
 * A DEL or GC has the same budget and no commit: its requests get at most
 * what is left (`leftMs`, kube-request.ts TimeLeft), its waits for the
 * database lock too, and one that runs out fails with `spent` (code 11, the
 * runtime retries it).
 */
import { cpus, loadavg } from "node:os";
import { IpamError } from "../ipam/ipam-error.ts";
import { KubeUnreachableError } from "../kube/kube-errors.ts";

export class Deadline {
  private readonly start = Date.now();
  private readonly end: number;
  private expired = false;
  private committed = false;

  constructor(
    readonly ms: number,
    readonly server = "",
  ) {
    this.end = this.start + ms;
  }

  /** Milliseconds since the ADD began. */
  elapsedMs(): number {
    return Date.now() - this.start;
  }

  /** Milliseconds left of the budget (0 once it has run out). */
  leftMs(): number {
    return Math.max(0, this.end - Date.now());
  }

  /** Every address is taken: from here on the ADD finishes, whatever the time. */
  commit(): void {
    this.committed = true;
  }

  /** Throws once the time is up, unless committed; call between steps. */
  check(): void {
    if (this.committed) return;
    if (this.expired || Date.now() > this.end) throw this.error();
  }

  /**
   * The error of a budget that ran out, naming what it ran out on: a node
   * whose CPUs are overloaded (this process waited to run), or the API server.
   */
  error(): KubeUnreachableError {
    const load = loadavg()[0];
    const n = cpus().length || 1;
    const budget = `gave up after ${this.ms / 1000} s (the network's timeoutSeconds) before every address was taken; what it took is given back`;
    const cause =
      load > 2 * n
        ? `this node is overloaded (load average ${load.toFixed(1)} on ${n} CPUs): the ADD waited to run, not only for API server ${this.server}`
        : `waiting for API server ${this.server}`;
    return new KubeUnreachableError(this.server, `${budget}: ${cause}`);
  }

  /**
   * The error of a DEL or GC that ran out of its budget on `cause` (a request
   * cut to what was left, or the database lock): "try again", naming the
   * budget. Whatever it had done stays done; the retry picks up from there.
   */
  spent(command: string, cause: unknown): IpamError {
    const load = loadavg()[0];
    const n = cpus().length || 1;
    const overloaded = load > 2 * n ? `; this node is overloaded (load average ${load.toFixed(1)} on ${n} CPUs)` : "";
    return new IpamError(
      "try-again",
      `${command} gave up after ${this.ms / 1000} s (the network's timeoutSeconds): ${(cause as Error)?.message ?? String(cause)}${overloaded}`,
      "the runtime retries it; what was already released stays released",
      { cause },
    );
  }

  /**
   * Runs `fn`, rejecting once the deadline passes unless `fn` has committed.
   * A step already in flight then finishes (each request has its own
   * timeout) before this rejects: undoing while a write is still on its way
   * would leave behind whatever that write does after the undo, such as an
   * endpoint naming a deleted claim. If that step completes the ADD (it
   * committed meanwhile), its result stands.
   */
  async race<T>(fn: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const running = fn();
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), Math.max(0, this.end - Date.now()));
    });
    try {
      const first = await Promise.race([running, expired]);
      if (first !== "expired") return first as T;
      if (!this.committed) this.expired = true;
      return await running; // committed: finishes; otherwise stops at its next check()
    } finally {
      clearTimeout(timer);
    }
  }
}
