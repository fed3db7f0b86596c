/**
 * Static pods whose mirror pods come and go, for the fault soak (issue 17,
 * window 2). Not a test file itself.
 *
 * A static pod runs from a manifest on its node; the API server only shows
 * its mirror pod, which carries the kubelet's UID for it (the config hash)
 * in `kubernetes.io/config.mirror`, and the kubelet's ADD carries that hash
 * as K8S_POD_UID. Deleting the mirror does not stop the static pod: the
 * kubelet re-creates the mirror, with a new UID and the same hash, about a
 * second later after a graceful delete, or up to 1.5 minutes later after a
 * forced one. A MirrorChurn runs one static pod per node, ADDed once, and in
 * the background force-deletes their mirrors and re-creates them after a
 * random gap. The static pods run throughout: they keep their addresses.
 */
import { randomBytes } from "node:crypto";
import { CONFIG_MIRROR_ANNOTATION } from "../../../plugin/cluster/statefulset.ts";
import { type Churn, type ChurnNode, type Holder, type Running, rand } from "./churn.ts";
import { admin, path } from "./cluster-env.ts";
import { sleep } from "./controller-env.ts";

interface StaticPod {
  name: string;
  /** The config hash: the kubelet's UID for the pod. */
  hash: string;
  node: ChurnNode;
  running?: Running;
}

export interface MirrorChurnOptions {
  /** The churn whose namespace, pool and nodes the static pods use (one per node). */
  churn: Churn;
  /** A mirror lives this long (ms, random up to) before it is deleted. */
  lifeMs: number;
  /** It comes back after a gap of up to this long (ms). */
  gapMs: number;
}

export class MirrorChurn {
  readonly stats = { mirrorsDeleted: 0, mirrorsRecreated: 0, longestGapMs: 0 };
  private readonly pods: StaticPod[];
  private loops: Promise<void>[] = [];
  private stopping = false;
  private stopped!: Promise<void>;
  private wake!: () => void;
  private error: unknown;

  constructor(readonly o: MirrorChurnOptions) {
    this.pods = o.churn.nodes.map((node) => ({ name: `static-${node.sim.name}`, hash: randomBytes(16).toString("hex"), node }));
  }

  /** The static pods (they always run), for Churn.check. */
  holders(): Holder[] {
    const ns = this.o.churn.o.ns;
    return this.pods.filter((p) => p.running).map((p) => ({ ns, name: p.name, uid: p.hash, address: p.running!.address, listed: true, why: "static pod" }));
  }

  /** The static pods' sandboxes on node NAME (for a GC's valid list). */
  sandboxesOn(node: string): string[] {
    return this.pods.filter((p) => p.running && p.node.sim.name === node).map((p) => p.running!.containerId);
  }

  /** Mirrors created, static pods ADDed (the kubelet's UID, the hash). */
  async start(): Promise<void> {
    await Promise.all(
      this.pods.map(async (p) => {
        await this.mirror(p);
        p.running = await this.o.churn.add(p.name, p.hash, p.node);
      }),
    );
  }

  /** From now on, in the background: each mirror deleted (forced) after a random life, re-created after a random gap. */
  shake(): void {
    this.stopped = new Promise<void>((r) => (this.wake = r));
    // A sleep that stop() cuts short.
    const nap = (ms: number) => Promise.race([sleep(ms), this.stopped]);
    this.loops = this.pods.map(async (p) => {
      try {
        while (!this.stopping) {
          await nap(rand(this.o.lifeMs));
          if (this.stopping) break;
          await this.o.churn.deleteNow(p.name);
          this.stats.mirrorsDeleted++;
          const t = Date.now();
          await nap(rand(this.o.gapMs));
          this.stats.longestGapMs = Math.max(this.stats.longestGapMs, Date.now() - t);
          await this.mirror(p);
          this.stats.mirrorsRecreated++;
        }
      } catch (err) {
        this.error ??= err;
      }
    });
  }

  /** Stops the background churn, every mirror back; throws what it met. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await Promise.all(this.loops);
    if (this.error) throw this.error;
  }

  /** The kubelet's mirror pod of `p`: a new UID, the same hash, on its node. */
  private async mirror(p: StaticPod): Promise<void> {
    const ch = this.o.churn;
    await admin.create(path("pods", { ns: ch.o.ns }), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: p.name, namespace: ch.o.ns, annotations: { ...ch.annotations, [CONFIG_MIRROR_ANNOTATION]: p.hash } },
      spec: { nodeName: p.node.sim.name, containers: [{ name: "app", image: "nginx" }] },
    });
  }
}
