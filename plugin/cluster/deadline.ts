/** Bounds an ADD in time: past the deadline every further step refuses to start. */
import { KubeUnreachableError } from "../kube/kube-errors.ts";

export class Deadline {
  private readonly start = Date.now();
  private readonly end: number;
  private expired = false;

  constructor(
    readonly ms: number,
    readonly server: string,
  ) {
    this.end = this.start + ms;
  }

  /** Milliseconds since the ADD began. */
  elapsedMs(): number {
    return Date.now() - this.start;
  }

  /** Throws once the time is up; call between steps. */
  check(): void {
    if (this.expired || Date.now() > this.end) throw this.error();
  }

  error(): KubeUnreachableError {
    return new KubeUnreachableError(this.server, `gave up after ${this.ms / 1000} s waiting for API server ${this.server}`);
  }

  /**
   * Runs `fn`, rejecting once the deadline passes. A step already in flight
   * then finishes (each request has its own timeout) before this rejects:
   * undoing while a write is still on its way would leave behind whatever
   * that write does after the undo, such as an endpoint naming a deleted claim.
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
      this.expired = true;
      await running.catch(() => undefined); // stops at its next check()
      throw this.error();
    } finally {
      clearTimeout(timer);
    }
  }
}
