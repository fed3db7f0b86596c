/** What an ADD took on the API server, to give back if a later step fails. */
import type { Logger } from "../support/logger.ts";

export class UndoLog {
  private steps: { what: string; run: () => Promise<unknown> }[] = [];

  /** Registers how to undo a step that just succeeded. */
  push(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }

  /** Undoes everything, newest first; a failing step is logged and the rest still run. */
  async run(log: Logger): Promise<void> {
    for (const step of this.steps.reverse()) {
      try {
        await step.run();
        log.info("rolled back", { step: step.what });
      } catch (err) {
        log.warn("rollback step failed; the controller will find what is left", { step: step.what, error: (err as Error).message });
      }
    }
    this.steps = [];
  }
}
