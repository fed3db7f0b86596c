/**
 * Fault injection for berth's own tests, read in this one place. A release
 * build honours it too (the tests run the compiled binary), so every switch
 * is inert unless BERTH_FAULT names it explicitly. BERTH_FAULT is a comma-
 * separated list of switches, some with a value (`name=value`):
 *
 *   kill-after-pending     a cluster ADD SIGKILLs itself right after writing a pending
 *                          lease for a free address, before creating its claim
 *   kill-after-claim       a cluster ADD SIGKILLs itself right after creating a claim
 *   pause-scan=SECONDS     the controller's first full scan stops for SECONDS after
 *                          judging its first claim (a scan that takes long)
 */
export type Fault = "kill-after-pending" | "kill-after-claim" | "pause-scan";

const active = new Map<string, string>();
for (const entry of (process.env.BERTH_FAULT ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean)) {
  const i = entry.indexOf("=");
  active.set(i < 0 ? entry : entry.slice(0, i), i < 0 ? "" : entry.slice(i + 1));
}

/** Whether the test suite switched `fault` on for this process. */
export function faultEnabled(fault: Fault): boolean {
  return active.has(fault);
}

/** The value given with `fault` (`name=value`), or undefined when the switch is off. */
export function faultValue(fault: Fault): string | undefined {
  return active.get(fault);
}

/** Dies the hardest way when `fault` is on: no undo, no answer, as a node losing power would. */
export function crashIf(fault: Fault): void {
  if (active.has(fault)) process.kill(process.pid, "SIGKILL");
}
