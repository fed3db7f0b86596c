import { transportContract } from "./transport-contract.ts";

transportContract("Node, node:https");
