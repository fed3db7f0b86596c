/**
 * The documentation's kubectl commands on the test control plane, as a
 * reader types them (../docs/doc-blocks.ts): bash, with `kubectl` the
 * plane's 1.20.2 as cluster admin (../kube/kubectl.ts), in a namespace of the test's (the reader's
 * current namespace), in a working directory of the scope's. Not a test
 * file itself.
 *
 * A console block (a transcript) is walked step by step: the test runs each
 * shown command when its scenario reaches it, and the output must be what
 * the page shows, column by column (../docs/doc-shell.ts compareOutput).
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { DOCS_ROOT, type TranscriptStep } from "../docs/doc-blocks.ts";
import { compareOutput, type OutputRules, runShell, runShellAsync, type ShellResult } from "../docs/doc-shell.ts";
import { kubectlShim } from "../kube/kubectl.ts";
import type { ClusterScope } from "./cluster-env.ts";
import { ADMIN_KUBECONFIG } from "./test-plane.ts";

/** Where the documented commands run. */
export interface DocShell {
  /** The working directory (files the commands name go here). */
  cwd: string;
  /** Runs one command; `inRepo` runs it from the repository's root (commands that name fixtures/). */
  run(command: string, o?: { timeoutMs?: number; inRepo?: boolean }): ShellResult;
  start(command: string, timeoutMs?: number): Promise<ShellResult>;
  /** Writes a file into the working directory. */
  write(name: string, text: string): void;
}

/** A shell whose `kubectl` is the test plane's, as admin, with `ns` as the current namespace. */
export function docShell(c: ClusterScope, ns: string): DocShell {
  const dir = c.tempDir("doc");
  const tools = join(dir, "bin");
  const cwd = join(dir, "work");
  mkdirSync(tools);
  mkdirSync(cwd);
  const kubeconfig = join(dir, "kubeconfig");
  copyFileSync(ADMIN_KUBECONFIG, kubeconfig);
  kubectlShim(tools);
  const opts = { cwd, tools, env: { KUBECONFIG: kubeconfig } };
  const set = runShell(`kubectl config set-context --current --namespace ${ns}`, opts);
  if (set.status !== 0) throw new Error(`kubectl config set-context: ${set.stderr}`);
  return {
    cwd,
    run: (command, o = {}) => runShell(command, { ...opts, timeoutMs: o.timeoutMs ?? 60_000, ...(o.inRepo ? { cwd: DOCS_ROOT } : {}) }),
    start: (command, timeoutMs = 120_000) => runShellAsync(command, { ...opts, timeoutMs }),
    write: (name, text) => writeFileSync(join(cwd, name), text),
  };
}

/** A transcript (a console block) walked in order by a test. */
export class DocWalk {
  private next = 0;
  /** Shown values bound to the run's own (see compareOutput). */
  readonly bindings = new Map<string, string>();

  /** `id` names the transcript in messages; `steps` are docTranscript(ID)'s. */
  constructor(
    readonly id: string,
    private readonly steps: TranscriptStep[],
    private readonly sh: DocShell,
    private readonly rules: OutputRules,
  ) {}

  /** The next step, which must start with `prefix` (the test's scenario and the page in step). */
  private take(prefix: string): TranscriptStep {
    const step = this.steps[this.next++];
    assert.ok(step, `${this.id}: the page has no step ${this.next} (${prefix} ...)`);
    assert.ok(step.command.startsWith(prefix), `${this.id} step ${this.next}: the page runs "${step.command}" where the test expects "${prefix} ..."`);
    return step;
  }

  private check(step: TranscriptStep, r: ShellResult): string[] {
    if (r.status !== 0) return [`exit ${r.status}: ${r.stderr.trim()}`];
    return compareOutput(step.output, r.stdout.split("\n"), this.rules, this.bindings);
  }

  private fail(step: TranscriptStep, r: ShellResult, problems: string[]): never {
    assert.equal(problems, [], `${this.id}: $ ${step.command}\nthe page shows:\n${step.output.join("\n")}\nprinted:\n${r.stdout}${r.stderr}`);
    throw new Error("unreachable");
  }

  /** Runs the next step; with `retryMs`, again until its output is the page's (a count the controller writes shortly). */
  async run(prefix: string, retryMs = 0): Promise<void> {
    const step = this.take(prefix);
    const until = Date.now() + retryMs;
    for (;;) {
      const r = this.sh.run(step.command);
      const problems = this.check(step, r);
      if (problems.length === 0) return;
      if (Date.now() >= until) this.fail(step, r, problems);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  /** Starts the next step in the background (a command that waits on the kubelet); `done()` checks its output. */
  start(prefix: string): { done: () => Promise<void> } {
    const step = this.take(prefix);
    const running = this.sh.start(step.command);
    return {
      done: async () => {
        const r = await running;
        const problems = this.check(step, r);
        if (problems.length) this.fail(step, r, problems);
      },
    };
  }

  /** Every step of the page has been run. */
  end(): void {
    assert.is(this.next, this.steps.length, `${this.id}: ${this.steps.length - this.next} step(s) of the page not run`);
  }
}
