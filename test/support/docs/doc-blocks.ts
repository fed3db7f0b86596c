/**
 * The fenced blocks of the documentation (README.md, BENCHMARKS.md,
 * docs/*.md), so that tests run the commands the pages show, read from the
 * pages themselves: one source, and a page that goes stale fails a test.
 *
 * Every shell block (sh, bash, shell, console) carries a tag on the line
 * before its fence (blank lines between are allowed):
 *
 *   <!-- doc-test: ID -->        a test reads it: docCommands(ID), docTranscript(ID) or docBlock(ID)
 *   <!-- not-run: REASON -->     no test runs it, and why
 *
 * Other blocks (yaml, json, text) may carry a doc-test tag when a test checks
 * them. test/unit/docs.test.ts enforces the tags, unique IDs, and that every
 * ID is read by some test file.
 *
 * In a sh/bash/shell block, each line is a command (a line ending in `\`
 * continues on the next, a here-document runs to its terminator); blank lines
 * and lines that are only a comment are not commands. In a console block,
 * commands start with `$ ` and the lines after one, up to the next, are its
 * expected output.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

export const DOCS_ROOT = resolve(import.meta.dirname, "../../..");

/** The languages whose blocks are commands. */
export const SHELL_LANGS = new Set(["sh", "bash", "shell", "console"]);

export interface DocBlock {
  /** Path relative to the repository root, e.g. "docs/deploy.md". */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string's first word ("" when none). */
  lang: string;
  /** The block's lines, joined with "\n", with a final "\n". */
  text: string;
  /** The tag before the fence, if any. */
  tag?: { kind: "doc-test"; id: string } | { kind: "not-run"; reason: string };
}

/** The documentation pages, relative to the repository root. */
export function docFiles(root = DOCS_ROOT): string[] {
  const docs = readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  return ["README.md", "BENCHMARKS.md", ...docs];
}

const TAG = /^<!--\s*(doc-test|not-run)\s*:\s*(.*?)\s*-->$/;

/** Every fenced block of one markdown text. */
export function parseBlocks(markdown: string, file: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !(lines[j].trim().startsWith(fence) && lines[j].trim().replace(/[`~]/g, "") === "")) body.push(lines[j++]);
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === "") k--;
    const m = k >= 0 ? TAG.exec(lines[k].trim()) : null;
    const tag = !m ? undefined : m[1] === "doc-test" ? { kind: "doc-test" as const, id: m[2] } : { kind: "not-run" as const, reason: m[2] };
    // A block inside a list item is indented like its fence: the commands are not.
    const text = body.map((l) => (l.startsWith(open[1]) ? l.slice(open[1].length) : l.trimStart()));
    blocks.push({ file, line: i + 1, lang: open[3].toLowerCase(), text: text.length ? `${text.join("\n")}\n` : "", tag });
    i = j;
  }
  return blocks;
}

let cache: DocBlock[] | undefined;

/** Every fenced block of every documentation page. */
export function allDocBlocks(root = DOCS_ROOT): DocBlock[] {
  if (root !== DOCS_ROOT) return docFiles(root).flatMap((f) => parseBlocks(readFileSync(join(root, f), "utf8"), f));
  cache ??= docFiles().flatMap((f) => parseBlocks(readFileSync(join(DOCS_ROOT, f), "utf8"), f));
  return cache;
}

/** The block tagged `<!-- doc-test: ID -->`; throws when there is none, or more than one. */
export function docBlock(id: string): DocBlock {
  const found = allDocBlocks().filter((b) => b.tag?.kind === "doc-test" && b.tag.id === id);
  if (found.length !== 1) {
    throw new Error(`doc block ${JSON.stringify(id)}: ${found.length ? `tagged ${found.length} times` : "no block is tagged so"} in ${docFiles().join(", ")}`);
  }
  return found[0];
}

/** Where a block is, for messages: "docs/deploy.md:42". */
export function whereIs(b: DocBlock): string {
  return `${relative(DOCS_ROOT, join(DOCS_ROOT, b.file))}:${b.line}`;
}

/** The commands of a sh/bash/shell block's text (see the header). */
export function commandsOf(text: string): string[] {
  const lines = text.replace(/\n$/, "").split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === "" || lines[i].trim().startsWith("#")) continue;
    const cmd = [lines[i]];
    while (cmd[cmd.length - 1].endsWith("\\") && i + 1 < lines.length) cmd.push(lines[++i]);
    const here = /<<-?\s*(['"]?)(\w+)\1/.exec(cmd.join("\n"));
    if (here) while (i + 1 < lines.length && cmd[cmd.length - 1].trim() !== here[2]) cmd.push(lines[++i]);
    out.push(cmd.join("\n"));
  }
  return out;
}

/** One command of a console block and the output the page shows for it. */
export interface TranscriptStep {
  command: string;
  output: string[];
}

/** The steps of a console block's text: `$ ` lines are commands (a `\` at the end continues), the rest their output. */
export function transcriptOf(text: string): TranscriptStep[] {
  const lines = text.replace(/\n$/, "").split("\n");
  const steps: TranscriptStep[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith("$ ")) {
      const cmd = [lines[i].slice(2)];
      while (cmd[cmd.length - 1].endsWith("\\") && i + 1 < lines.length) cmd.push(lines[++i]);
      steps.push({ command: cmd.join("\n"), output: [] });
    } else if (steps.length) {
      steps[steps.length - 1].output.push(lines[i]);
    } else if (lines[i].trim() !== "") {
      throw new Error(`console block: output before the first "$ " command: ${JSON.stringify(lines[i])}`);
    }
  }
  for (const s of steps) while (s.output.length && s.output[s.output.length - 1].trim() === "") s.output.pop();
  return steps;
}

/** The commands of the shell block tagged ID, in order (for a console block: its `$ ` commands). */
export function docCommands(id: string): string[] {
  const b = docBlock(id);
  if (!SHELL_LANGS.has(b.lang)) throw new Error(`doc block ${id} (${whereIs(b)}) is ${b.lang || "untyped"}, not a shell block`);
  return b.lang === "console" ? transcriptOf(b.text).map((s) => s.command) : commandsOf(b.text);
}

/** The steps of the console block tagged ID. */
export function docTranscript(id: string): TranscriptStep[] {
  const b = docBlock(id);
  if (b.lang !== "console") throw new Error(`doc block ${id} (${whereIs(b)}) is ${b.lang || "untyped"}, not a console block`);
  return transcriptOf(b.text);
}

/** A command with its upper-case placeholders filled in: fill("kubectl patch sp NAME", { NAME: "a" }). Throws if one is not there. */
export function fill(command: string, values: Record<string, string>): string {
  let out = command;
  for (const [k, v] of Object.entries(values)) {
    const re = new RegExp(`\\b${k}\\b`, "g");
    if (!re.test(out)) throw new Error(`placeholder ${k} is not in ${JSON.stringify(command)}`);
    out = out.replace(re, v);
  }
  return out;
}
