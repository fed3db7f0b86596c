/**
 * The operator commands that work on the cluster as a whole: the controller,
 * `berth check` and `berth adopt`, in one lazy entry (support/lazy-entries.ts).
 * Each lazy entry is a bundle of its own, so as three entries each would carry
 * its own copy of the Kubernetes client, the claims code and the judgement
 * (measured: 2.6 MB more per entry in dist/berth).
 */
export { adoptMain, adoptOptions } from "./adopt/adopt-main.ts";
export { checkMain, checkOptions } from "./check/check-main.ts";
export { controllerMain } from "./controller/controller-main.ts";
