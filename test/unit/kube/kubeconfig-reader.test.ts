import { kubeconfigContract } from "./kubeconfig-contract.ts";

kubeconfigContract("Node, js-yaml");
