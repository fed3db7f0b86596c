/** Which kubeconfig an operator command uses, resolved as kubectl resolves it. */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The flag, then $KUBECONFIG (its first file), then ~/.kube/config; undefined
 * means in-cluster (the pod's ServiceAccount).
 */
export function resolveKubeconfig(flag: string | undefined, env: Record<string, string | undefined>): string | undefined {
  if (flag) return flag;
  const fromEnv = env.KUBECONFIG?.split(":").find(Boolean);
  if (fromEnv) return fromEnv;
  const home = join(env.HOME ?? homedir(), ".kube", "config");
  return existsSync(home) ? home : undefined;
}
