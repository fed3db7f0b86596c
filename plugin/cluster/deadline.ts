/** Bounds an ADD in time: past the deadline every further step refuses to start. */
import { KubeUnreachableError } from "../kube/kube-errors.ts";

export class Deadline {
  private readonly end: number;

  constructor(readonly ms: number, readonly server: string) {
    this.end = Date.now() + ms;
  }

  /** Throws once the time is up; call between steps. */
  check(): void {
    if (Date.now() > this.end) throw this.error();
  }

  error(): KubeUnreachableError {
    return new KubeUnreachableError(this.server, `gave up after ${this.ms / 1000} s waiting for API server ${this.server}`);
  }

  /** Runs `fn`, rejecting when the deadline passes first (the caller then rolls back). */
  async race<T>(fn: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.error()), Math.max(0, this.end - Date.now()));
    });
    try {
      return await Promise.race([fn(), expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
