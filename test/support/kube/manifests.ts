/**
 * The objects of a manifest as the admin client's `apply` sends them: JSON
 * or YAML, several YAML documents, `kind: List` unpacked. Only the header of
 * a YAML document is read here (what names its REST path); the API server
 * parses the rest.
 */

/** What names an object's REST path. */
export interface ManifestHeader {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

/**
 * The header of a YAML document (apiVersion, kind, metadata.name and
 * .namespace, as plain or quoted scalars); the API server parses the rest.
 */
function yamlHeader(doc: string): ManifestHeader {
  const scalar = (s: string | undefined) => s?.trim().replace(/^(["'])(.*)\1$/, "$2");
  const top = (k: string) => scalar(new RegExp(`^${k}:[ \\t]*(\\S.*)$`, "m").exec(doc)?.[1]);
  const meta = /^metadata:[ \t]*\n((?:(?:[ \t]+.*)?\n?)*)/m.exec(doc)?.[1] ?? "";
  const indent = /^([ \t]+)\S/m.exec(meta)?.[1] ?? "  ";
  const field = (k: string) => scalar(new RegExp(`^${indent}${k}:[ \\t]*(\\S.*)$`, "m").exec(meta)?.[1]);
  const m = { apiVersion: top("apiVersion") ?? "", kind: top("kind") ?? "", metadata: { name: field("name") ?? "", namespace: field("namespace") } };
  if (!m.apiVersion || !m.kind || !m.metadata.name) throw new Error(`apply: no apiVersion, kind or metadata.name found in YAML document:\n${doc}`);
  return m;
}

/** Each object of a manifest (JSON or YAML, `kind: List` unpacked) with the body to send. */
export function documents(manifest: string | object): { m: ManifestHeader; body: string }[] {
  const objects = (o: any): { m: ManifestHeader; body: string }[] =>
    o.kind === "List" ? (o.items as any[]).flatMap(objects) : [{ m: o as ManifestHeader, body: JSON.stringify(o) }];
  if (typeof manifest !== "string") return objects(manifest);
  const text = manifest.trim();
  if (text.startsWith("{") || text.startsWith("[")) return objects(JSON.parse(text));
  return text
    .split(/^---[ \t]*$/m)
    .filter((d) => /\S/.test(d.replace(/^\s*#.*$/gm, "")))
    .map((d) => ({ m: yamlHeader(d), body: d }));
}
