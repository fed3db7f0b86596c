/**
 * The YAML parser for kubeconfigs. In the compiled binary it is bun's own
 * (native, nothing to load); under Node (development, tests) it is js-yaml,
 * the parser client-node itself uses. js-yaml is not bundled: loaded in the
 * compiled binary it costs ~14 ms of CPU at every start (measured), about a
 * quarter of a cluster ADD's own work.
 */
import { createRequire } from "node:module";

/** A YAML parser: text in, the document's value out; throws on malformed YAML. */
export type YamlParse = (text: string) => unknown;

/** js-yaml's `load`, required under a name the bundler cannot follow (it must not be bundled). */
function jsYaml(): YamlParse {
  const name = ["js", "yaml"].join("-");
  return (createRequire(import.meta.url)(name) as { load: YamlParse }).load;
}

/** Parses one YAML document with the runtime's parser (see the file comment). */
export function parseYaml(text: string): unknown {
  const bunYaml = (globalThis as { Bun?: { YAML?: { parse: YamlParse } } }).Bun?.YAML;
  return bunYaml ? bunYaml.parse(text) : jsYaml()(text);
}
