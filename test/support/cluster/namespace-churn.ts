/**
 * Namespace deletion during grace, for the fault soak (issue 17, window 1).
 * Not a test file itself.
 *
 * A NamespaceChurn runs a few pods in a namespace of their own, bound and
 * ADDed (through a Churn of that namespace, so through its nodes' fault
 * proxy), all from one small pool that they fill exactly. Then, as
 * `kubectl delete namespace` does, the admin deletes the namespace: the
 * namespace controller deletes the pods gracefully (some with a long grace
 * period, some with one that runs out while they wait) and their
 * BerthEndpoints at once. No kubelet finishes them, so they stay Terminating
 * and may still use their addresses. While they do, `squat` asserts that
 * another pod asking for the pool finds it full. `finish` is their kubelet
 * at last: DEL or not, then the pod object goes. The next `start` waits for
 * their addresses to be released and runs the namespace again with new
 * pods of the same names. It takes its namespaces in turn (one Churn each,
 * all of the same pool): the namespace controller, backing off while the
 * pods stay, takes tens of seconds to remove a namespace once they are gone,
 * so each name is re-created only after the others had their turn.
 */
import { randomBytes } from "node:crypto";
import * as assert from "uvu/assert";
import { CLAIM_PLURAL, ENDPOINT_PLURAL } from "../../../plugin/kube/crd.ts";
import type { ClaimObject } from "../../../plugin/kube/kube-api.ts";
import { podArgs } from "../berth.ts";
import type { StoredPod } from "../kube/stored.ts";
import { type Churn, type ChurnNode, type Holder, pick } from "./churn.ts";
import { admin, createNamespace, path } from "./cluster-env.ts";
import { waitForAsync } from "./controller-env.ts";

/** One pod of a round, as its kubelet knows it. */
interface NsPod {
  ns: string;
  name: string;
  uid: string;
  churn: Churn;
  node: ChurnNode;
  containerId: string;
  address: string;
  /** When its ADD returned and when its kubelet finished it (ms since the epoch). */
  from: number;
  to?: number;
}

export interface NamespaceChurnOptions {
  /** One churn per namespace, used in turn; all of the same pool. */
  churns: Churn[];
  /** Pods at a time; the pool has exactly as many addresses. */
  pods: number;
  /** Grace periods, given to the pods in turn (seconds). */
  graces: number[];
  /** Of the pods finished, the fraction whose DEL ran first. */
  withDel: number;
}

export class NamespaceChurn {
  /** Every incarnation ever run, oldest first: a release of its address between `from` and `to` took it from a pod that may use it. */
  readonly history: NsPod[] = [];
  readonly stats = { rounds: 0, deletions: 0, heldPods: 0, finishedWithDel: 0, finishedWithoutDel: 0, squatsRefused: 0 };
  private pods: NsPod[] = [];
  /** Nodes where a pod was finished without its DEL: their local lease stays until the runtime's GC. */
  private undeleted = new Set<ChurnNode>();
  private terminating = false;
  private squatCount = 0;
  private turn = -1;

  constructor(readonly o: NamespaceChurnOptions) {}

  /** The churn of this round's namespace. */
  get churn(): Churn {
    return this.o.churns[Math.max(0, this.turn) % this.o.churns.length];
  }

  get ns(): string {
    return this.churn.o.ns;
  }

  get pool(): string {
    return this.churn.o.pool;
  }

  /** Whether this round's namespace is being deleted (its pods Terminating). */
  get deleting(): boolean {
    return this.terminating;
  }

  /** The pods that may use their addresses now: running, or Terminating without their kubelet having finished. */
  holders(): Holder[] {
    const why = this.terminating ? "Terminating in a deleted namespace" : "running in a namespace of its own";
    return this.pods.map((p) => ({ ns: p.ns, name: p.name, uid: p.uid, address: p.address, listed: !this.terminating, why }));
  }

  /** The sandboxes on node NAME that its runtime still runs (for a GC's valid list). */
  sandboxesOn(node: string): string[] {
    return this.pods.filter((p) => p.node.sim.name === node).map((p) => p.containerId);
  }

  /**
   * The next round: its namespace created (once its last incarnation is
   * gone) with its pods, bound to random nodes, and ADDed. Before, the last
   * round's addresses must all have been released (the pool is exactly
   * full), and the runtime's GC has run on the nodes whose pods got no DEL:
   * until then their local leases keep that node off those addresses.
   */
  async start(): Promise<void> {
    assert.equal(this.pods, [], "start: the last round's pods are finished");
    await waitForAsync(
      `the addresses of the last round's finished pods to be released (pool ${this.pool})`,
      async () => (await this.claims()).length === 0,
      30_000,
      250,
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}\nclaims left: ${JSON.stringify((await this.claims()).map((c) => c.spec))}`);
    });
    for (const node of this.undeleted) await this.churn.gc(node);
    this.undeleted.clear();
    this.turn++;
    const ch = this.churn;
    const ns = this.ns;
    await createNamespace(ns);
    this.terminating = false;
    await Promise.all(
      Array.from({ length: this.o.pods }, async (_, i) => {
        const name = `gone-${i}`;
        const node = ch.randomNode();
        const created = await admin.create<StoredPod>(path("pods", { ns }), {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, namespace: ns, annotations: ch.annotations },
          spec: {
            nodeName: node.sim.name,
            terminationGracePeriodSeconds: this.o.graces[i % this.o.graces.length],
            containers: [{ name: "app", image: "nginx" }],
          },
        });
        const r = await ch.add(name, created.metadata.uid, node);
        const p: NsPod = { ns, name, uid: r.uid, churn: ch, node, containerId: r.containerId, address: r.address, from: Date.now() };
        this.pods.push(p);
        this.history.push(p);
      }),
    );
    this.stats.rounds++;
  }

  /** `kubectl delete namespace`; the namespace controller then deletes its pods (gracefully) and endpoints. */
  async deleteNamespace(): Promise<void> {
    await admin.must("DELETE", path("namespaces", { name: this.ns }));
    this.terminating = true;
    this.stats.deletions++;
    this.stats.heldPods += this.pods.length;
  }

  /** Asserts (waiting a little) that the deleted namespace's endpoints are gone and every pod of it is Terminating. */
  async assertDeleting(): Promise<void> {
    await waitForAsync(
      `namespace ${this.ns} being deleted: its BerthEndpoints gone, its pods Terminating`,
      async () => {
        const [eps, pods] = await Promise.all([
          admin.request<{ items: unknown[] }>("GET", path(ENDPOINT_PLURAL, { ns: this.ns })),
          admin.list<StoredPod>(path("pods", { ns: this.ns })),
        ]);
        const gone = eps.status === 404 || eps.body.items.length === 0;
        return gone && this.pods.every((p) => pods.some((x) => x.metadata.name === p.name && x.metadata.deletionTimestamp));
      },
      15_000,
      200,
    );
  }

  /**
   * Another pod (in `ns`, on `node`, through `node`'s kubeconfig) asks for
   * this pool while every address is held: its ADD must be refused with
   * 100 (pool exhausted). An address it got would be on two pods.
   */
  async squat(ns: string, node: ChurnNode, extra: () => string): Promise<void> {
    const ch = this.churn;
    const name = `squat-${this.squatCount++}`;
    const created = await admin.create<StoredPod>(path("pods", { ns }), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns, annotations: ch.annotations },
      spec: { nodeName: node.sim.name, containers: [{ name: "app", image: "nginx" }] },
    });
    const containerId = randomBytes(32).toString("hex");
    const args = podArgs(ns, name, created.metadata.uid);
    const o = await ch.plugin(node, "ADD", { containerId, args });
    // The kubelet: DEL of the sandbox whatever the ADD did; then the pod goes.
    const d = await ch.plugin(node, "DEL", { containerId, args });
    await admin.delete(path("pods", { ns, name }), { gracePeriodSeconds: 0 });
    assert.is(d.status, 0, `DEL of squatter ${ns}/${name}: ${d.stdout} ${d.stderr}`);
    const held = this.pods.map((p) => `${p.ns}/${p.name} ${p.address}`).join(", ");
    assert.is(
      o.json?.code,
      100,
      `${ns}/${name} asked pool ${this.pool} while ${held} were ${this.terminating ? "Terminating" : "running"}: it must find the pool full, got ${o.stdout.trim()} ${o.stderr.trim()}\n${extra()}`,
    );
    this.stats.squatsRefused++;
  }

  /** Their kubelet finishes the Terminating pods: DEL (for a `withDel` fraction), then the pod object goes. */
  async finish(): Promise<void> {
    const withDel = new Set(pick(this.pods, Math.round(this.pods.length * this.o.withDel)));
    const done = this.pods;
    this.pods = [];
    await Promise.all(
      done.map(async (p) => {
        // From here on it no longer uses the address: a release is right.
        p.to = Date.now();
        if (withDel.has(p)) {
          await p.churn.del(p.node, p.containerId, p.name, p.uid, "DEL of a pod in a deleted namespace");
          this.stats.finishedWithDel++;
        } else {
          this.undeleted.add(p.node);
          this.stats.finishedWithoutDel++;
        }
        await p.churn.deleteNow(p.name);
      }),
    );
  }

  /** The pod whose address `address` was at `time`, while it may have used it (between its ADD and its end). */
  holderAt(address: string, time: number): NsPod | undefined {
    return this.history.find((p) => p.address === address && p.from < time && (p.to === undefined || time < p.to));
  }

  private async claims() {
    const all = await admin.list<ClaimObject>(path(CLAIM_PLURAL));
    return all.filter((c) => c.spec.pool === this.pool);
  }
}
