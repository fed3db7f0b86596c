// Runs under bun, as the compiled binary does (bun's YAML parser, Bun's native fetch):
// `bun test/unit/kube/kube-client.bun.ts`.
import { kubeconfigContract } from "./kubeconfig-contract.ts";
import { transportContract } from "./transport-contract.ts";

kubeconfigContract("bun, Bun.YAML");
transportContract("bun, native fetch");
