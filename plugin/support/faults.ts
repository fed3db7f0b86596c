/**
 * Fault injection for berth's own tests, read in this one place. A release
 * build honours it too (the tests run the compiled binary), so every switch
 * is inert unless BERTH_FAULT names it explicitly.
 *
 *   BERTH_FAULT=kill-after-claim   a cluster ADD SIGKILLs itself right after creating a claim
 */
export type Fault = "kill-after-claim";

const active = new Set((process.env.BERTH_FAULT ?? "").split(",").map((s) => s.trim()).filter(Boolean));

/** Whether the test suite switched `fault` on for this process. */
export function faultEnabled(fault: Fault): boolean {
  return active.has(fault);
}

/** Dies the hardest way when `fault` is on: no undo, no answer, as a node losing power would. */
export function crashIf(fault: Fault): void {
  if (active.has(fault)) process.kill(process.pid, "SIGKILL");
}
