/**
 * Runs the documentation's commands (test/support/docs/doc-blocks.ts) as a reader
 * would type them, with bash, and compares what they print with the output
 * the page shows.
 *
 * A command that names host paths (/var/lib/cni/berth, /opt/cni/bin) runs in
 * a private mount namespace (`unshare --mount`, root only) in which a test
 * directory appears at that path; the host's own directories are never
 * touched. Programs the command names (kubectl, berth) come first on PATH,
 * from a directory of links the test makes (`toolDir`).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface ShellResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface ShellOptions {
  cwd: string;
  /** Added to the environment (CNI_* variables are never passed on). */
  env?: Record<string, string>;
  /** A directory put first on PATH (see toolDir). */
  tools?: string;
  /** Host path → the directory that appears there, in a private mount namespace. */
  mounts?: Record<string, string>;
  /** Default 60 s. */
  timeoutMs?: number;
}

/** A directory of links named as the keys (e.g. { kubectl: "/path/to/kubectl-1.20.2" }); cleanup() removes it. */
export function toolDir(tools: Record<string, string>): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "berth-doc-tools-"));
  for (const [name, target] of Object.entries(tools)) symlinkSync(target, join(dir, name));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The mounts as shell lines. A target that does not exist on the host gets a
 * tmpfs on its deepest existing ancestor (which it hides, in this namespace
 * only) and is made inside it; that ancestor must hold none of `keep`.
 */
function mountLines(mounts: Record<string, string>, keep: string[]): string[] {
  const lines: string[] = [];
  const hidden: string[] = [];
  for (const [target, source] of Object.entries(mounts)) {
    let at = target;
    while (!existsSync(at)) at = dirname(at);
    const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
    if (hidden.some((h) => under(at, h) || under(h, at))) throw new Error(`mounts: ${target} and an earlier mount share ${at}`);
    if (at !== target) {
      const held = keep.find((k) => under(k, at));
      if (at === "/" || held) throw new Error(`mounts: a tmpfs on ${at} for ${target} would hide ${held ?? "everything"}`);
      hidden.push(at);
      lines.push(`mount -t tmpfs -o mode=0755 berth-doc ${quote(at)}`, `mkdir -p ${quote(target)}`);
    }
    lines.push(`mount --bind ${quote(source)} ${quote(target)}`);
  }
  return lines;
}

function invocation(command: string, o: ShellOptions): { cmd: string; args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CNI_")) env[k] = v;
  Object.assign(env, o.env ?? {});
  if (o.tools) env.PATH = `${o.tools}:${env.PATH ?? "/usr/bin:/bin"}`;
  if (!o.mounts || Object.keys(o.mounts).length === 0) return { cmd: "bash", args: ["-c", command], env };
  if (process.getuid?.() !== 0) throw new Error("a documented command on host paths runs in a mount namespace: needs root");
  const keep = [o.cwd, ...(o.tools ? [o.tools] : []), ...Object.values(o.mounts)];
  const prelude = ["set -e", ...mountLines(o.mounts, keep), `cd ${quote(o.cwd)}`, "set +e"].join("\n");
  return { cmd: "unshare", args: ["--mount", "--propagation", "private", "bash", "-c", `${prelude}\n${command}`], env };
}

/** Runs one command with bash, synchronously. Never throws on a non-zero exit. */
export function runShell(command: string, o: ShellOptions): ShellResult {
  const { cmd, args, env } = invocation(command, o);
  const r = spawnSync(cmd, args, { cwd: o.cwd, env, encoding: "utf8", timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}${r.error ? `\n${r.error.message}` : ""}` };
}

/** Runs one command with bash in the background (e.g. a `kubectl delete` that waits while the test plays the kubelet). */
export function runShellAsync(command: string, o: ShellOptions): Promise<ShellResult> {
  const { cmd, args, env } = invocation(command, o);
  return new Promise((done) => {
    const c = spawn(cmd, args, { cwd: o.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => c.kill("SIGKILL"), o.timeoutMs ?? 60_000);
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("error", (err) => (stderr += `\n${err.message}`));
    c.on("close", (status) => {
      clearTimeout(timer);
      done({ status: status ?? -1, stdout, stderr });
    });
  });
}

/** How shown output is compared with what a command printed. */
export interface OutputRules {
  /** Columns whose values differ from run to run (AGE): any one word matches. */
  vary?: string[];
  /**
   * Columns whose values stand for the run's own (IP): the first time a shown
   * value is met it is bound to the printed one, and from then on it must be
   * that one, and no other shown value may stand for it.
   */
  bind?: string[];
}

/**
 * The differences between the output a page shows and what was printed, as
 * messages (none: they agree). Lines are split into columns at runs of two
 * or more spaces (kubectl's tables); the first shown line names the columns.
 * `bindings` (shown value → printed value) carries over between calls, and is
 * updated only when the outputs agree.
 */
export function compareOutput(shown: string[], printed: string[], rules: OutputRules, bindings: Map<string, string>): string[] {
  const split = (l: string) => l.trim().split(/\s{2,}/);
  const want = shown.filter((l) => l.trim() !== "").map(split);
  const got = printed.filter((l) => l.trim() !== "").map(split);
  const problems: string[] = [];
  if (want.length !== got.length) problems.push(`${want.length} lines shown, ${got.length} printed`);
  const names = want[0] ?? [];
  const bound = new Map(bindings);
  for (let r = 0; r < Math.min(want.length, got.length); r++) {
    if (want[r].length !== got[r].length) {
      problems.push(`line ${r + 1}: ${want[r].length} columns shown (${want[r].join(" | ")}), ${got[r].length} printed (${got[r].join(" | ")})`);
      continue;
    }
    for (let c = 0; c < want[r].length; c++) {
      const [w, g, name] = [want[r][c], got[r][c], names[c]];
      if (r > 0 && rules.vary?.includes(name)) continue;
      if (r > 0 && rules.bind?.includes(name)) {
        const earlier = bound.get(w);
        const taken = [...bound].find(([k, v]) => v === g && k !== w);
        if (earlier !== undefined && earlier !== g) problems.push(`line ${r + 1} ${name}: shown ${w} stands for ${earlier}, printed ${g}`);
        else if (taken) problems.push(`line ${r + 1} ${name}: printed ${g} is what shown ${taken[0]} stands for, not ${w}`);
        else bound.set(w, g);
        continue;
      }
      if (w !== g) problems.push(`line ${r + 1} ${name}: shown ${JSON.stringify(w)}, printed ${JSON.stringify(g)}`);
    }
  }
  if (problems.length === 0) for (const [k, v] of bound) bindings.set(k, v);
  return problems;
}
