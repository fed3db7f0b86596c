/**
 * Pod churn for the long cluster tests (controller-soak.test.ts,
 * fault-soak.test.ts, mixed-versions.test.ts), on top of cluster-env.ts and
 * controller-env.ts. Not a test file itself.
 *
 * A Churn plays scheduler and kubelet for one namespace and one pool, over
 * simulated nodes that each run their own berth binary (the DaemonSet's
 * binary on that node: 0.4.0 or the new one, swapped with `node.bin = ...`
 * as a rollout does) through their own kubeconfig (the plugin's, or one
 * through a fault proxy). berth is called directly (no interface):
 *
 * - ADD is the kubelet's: on failure, DEL of that sandbox and a new one. A
 *   102 naming a container this node still leases the address to (a pod
 *   removed here with no DEL) runs the runtime's GC on the node before the
 *   retry (every sandbox the runtime knows there is valid, ADDs in flight
 *   included); other failures are recorded (`failures`) or, under faults,
 *   counted as expected.
 * - DEL is retried as the kubelet retries it (under faults); without faults
 *   the first must succeed.
 * - A pod is removed with the kubelet's DEL (deletionTimestamp, DEL, final
 *   delete) or without (it is just gone, as when its node dies).
 *
 * `check` asserts what must hold at every quiet moment: no address on two
 * running pods (by the ADD results and by the living pods' BerthEndpoints),
 * no address on two interfaces (two endpoint entries), every running pod's
 * address claimed by it and listed in its endpoint, a recreated StatefulSet
 * member back on its address. Pods the churn does not run itself (static
 * pods, another namespace's) join these checks through `others`.
 * `unexplained` lists the claims that no living pod and no in-range
 * StatefulSet member owns, and that the caller's `explain` does not account
 * for; `converge` waits for none to be left and the pool's count to match;
 * `phantoms` lists endpoint entries whose address is not claimed by their pod.
 */
import { randomBytes } from "node:crypto";
import * as assert from "uvu/assert";
import { CLAIM_PLURAL, ENDPOINT_PLURAL, POOL_PLURAL } from "../../../plugin/kube/crd.ts";
import type { ClaimObject, EndpointObject, PoolObject, StatefulSetObject } from "../../../plugin/kube/kube-api.ts";
import type { Stored, StoredPod } from "../kube/stored.ts";
import { spawnCni } from "../spawn-cni.ts";
import { admin, apply, type ClusterScope, inBatches, path, podArgs, type SimNode, statefulSetManifest } from "./cluster-env.ts";
import { sleep, waitForAsync } from "./controller-env.ts";

/** A simulated node and the berth it runs. */
export interface ChurnNode {
  sim: SimNode;
  /** The berth binary installed on this node (replace to roll the node to another version). */
  bin: string;
  /** The kubeconfig its network configuration names (default: the plugin's ServiceAccount, straight to the API server). */
  kubeconfig?: string;
  /** For messages: "0.4.0", "new". */
  version: string;
}

export interface Running {
  name: string;
  uid: string;
  node: ChurnNode;
  containerId: string;
  address: string;
  set?: string;
}

/** The objects a churn reads, as the API server stores them (the product's types). */
type Claim = Stored<ClaimObject>;
type Endpoint = Stored<EndpointObject>;
/** The server defaults spec.replicas: always there when read back. */
type StatefulSet = Stored<StatefulSetObject> & { spec: { replicas: number } };

export interface CniOutcome {
  status: number;
  stdout: string;
  stderr: string;
  json: any;
}

export interface ChurnOptions {
  tag: string;
  ns: string;
  pool: string;
  nodes: ChurnNode[];
  /** The ipam block's timeoutSeconds (default 10). */
  timeoutSeconds?: number;
  /** Sandboxes tried per ADD before the test gives up (default 3). */
  addAttempts?: number;
  /** Instead of a number of attempts: new sandboxes until this long has passed (ms), as a kubelet keeps retrying. */
  addBudgetMs?: number;
  /** DELs tried before the test gives up (default 1: without faults the first must succeed). */
  delAttempts?: number;
  /** ADD failures are expected (faults): counted, not recorded as failures. */
  faults?: boolean;
  /** ADDs and removals at a time (default 8). */
  parallel?: number;
  /** The requests berth made (a fault proxy's log): printed for an ADD that keeps failing, from its 4th attempt on. */
  requestLog?: { mark(): number; since(mark: number): string };
  /**
   * Pods holding addresses that the churn does not run (static pods, pods of
   * another namespace), and more namespaces whose living pods' endpoints
   * count: `check` holds them to the same rules as its own.
   */
  others?: () => { holders: Holder[]; namespaces: string[] };
  /** Sandboxes on node NAME that the churn does not run (static pods, another churn's pods): the runtime's GC lists them as valid too. */
  alsoValid?: (node: string) => string[];
}

/** A pod outside the churn's `live` that holds an address (a static pod, another namespace's pod). */
export interface Holder {
  ns: string;
  name: string;
  /** The UID its ADD carried (a static pod's: its config hash). */
  uid: string;
  address: string;
  /** Whether its endpoint must list the address (not while its namespace is deleted: its endpoints go at once). */
  listed: boolean;
  /** What it is, for messages: "static pod", "Terminating in a deleted namespace". */
  why: string;
}

/** Why a claim the churn's own rules do not account for is rightly held, or undefined (see Churn.unexplained). */
export type Explain = (claim: Claim, facts: { listed: boolean; owned: boolean; pod?: StoredPod }) => string | undefined;

/** An endpoint entry whose address's claim is gone or another pod's. */
export interface Phantom {
  ns: string;
  name: string;
  address: string;
  /** The claim's pod ("NS/NAME"), or "none". */
  claimedBy: string;
}

export const rand = (n: number) => Math.floor(Math.random() * n);
export const pick = <T>(xs: T[], n: number): T[] => {
  const copy = [...xs];
  const out: T[] = [];
  while (out.length < n && copy.length) out.push(copy.splice(rand(copy.length), 1)[0]);
  return out;
};

export class Churn {
  readonly live = new Map<string, Running>();
  /** A StatefulSet member's expected address when it comes back (its binding), while no scale-down came between. */
  readonly binding = new Map<string, string>();
  readonly replicas = new Map<string, number>();
  readonly stats = {
    cycles: 0,
    withDel: 0,
    withoutDel: 0,
    adds: 0,
    addRetries: 0,
    faultedAdds: 0,
    delRetries: 0,
    sticky: 0,
    moves: 0,
    scaleDowns: 0,
    checks: 0,
    staleLeaseGcs: 0,
  };
  /** ADD failures that no fault explains. */
  readonly failures: string[] = [];
  /** ADDs refused with 102 (an address conflict) other than a stale lease on the node: an ADD that insisted on an address it may not have. */
  readonly conflicts: string[] = [];
  /** Under faults: why ADDs failed (the message, numbers and names blurred) → how often. */
  readonly faultReasons = new Map<string, number>();
  /** Sandboxes the runtime knows per node that are not in `live` (ADDs in flight, a crashed ADD not yet DELed): valid for GC. */
  readonly sandboxes: Map<string, Set<string>>;
  private readonly gcRunning = new Map<string, Promise<void>>();
  private plainCounter = 0;
  readonly annotations: Record<string, string>;
  readonly parallel: number;

  constructor(
    readonly c: ClusterScope,
    readonly o: ChurnOptions,
  ) {
    this.sandboxes = new Map(o.nodes.map((n) => [n.sim.name, new Set<string>()]));
    this.annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [o.pool] }) };
    this.parallel = o.parallel ?? 8;
  }

  get nodes(): ChurnNode[] {
    return this.o.nodes;
  }

  randomNode(): ChurnNode {
    return this.o.nodes[rand(this.o.nodes.length)];
  }

  /** The network configuration on `node` (its kubeconfig, the churn's timeout) plus `extra` in the ipam block. */
  conf(node: ChurnNode, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, any> {
    const conf = this.c.berthConf(node.sim, {
      timeoutSeconds: this.o.timeoutSeconds ?? 10,
      ...(node.kubeconfig ? { kubeconfig: node.kubeconfig } : {}),
      ...extra,
    });
    return { ...conf, ...top };
  }

  /** One call of the berth installed on `node`. */
  async plugin(
    node: ChurnNode,
    command: string,
    inv: { containerId?: string; args?: string; env?: Record<string, string>; stdin?: object } = {},
  ): Promise<CniOutcome> {
    const r = await spawnCni(node.bin, {
      command,
      ifname: "eth0",
      netns: "/var/run/netns/none",
      stdin: inv.stdin ?? this.conf(node),
      containerId: inv.containerId,
      args: inv.args,
      env: inv.env,
    });
    if (r.jsonError) throw new Error(`berth ${node.version} on ${node.sim.name} ${command}: ${r.jsonError}`);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: r.json };
  }

  /** The runtime's CNI GC on `node`, every sandbox it knows there valid; retried under faults. */
  async gc(node: ChurnNode): Promise<void> {
    while (this.gcRunning.has(node.sim.name)) await this.gcRunning.get(node.sim.name);
    let done!: () => void;
    this.gcRunning.set(node.sim.name, new Promise<void>((r) => (done = r)));
    try {
      const valid = [
        ...[...this.live.values()].filter((r) => r.node.sim === node.sim).map((r) => r.containerId),
        ...this.sandboxes.get(node.sim.name)!,
        ...(this.o.alsoValid?.(node.sim.name) ?? []),
      ].map((containerID) => ({ containerID, ifname: "eth0" }));
      const stdin = { ...this.conf(node), cniVersion: "1.1.0", "cni.dev/valid-attachments": valid };
      for (let attempt = 1; ; attempt++) {
        const o = await this.plugin(node, "GC", { stdin });
        if (o.status === 0) break;
        if (attempt >= (this.o.delAttempts ?? 1)) assert.unreachable(`GC on ${node.sim.name} (berth ${node.version}): ${o.stdout} ${o.stderr}`);
        await sleep(200);
      }
    } finally {
      this.gcRunning.delete(node.sim.name);
      done();
    }
  }

  /** The kubelet's DEL of a sandbox, retried (under faults) until it succeeds. */
  async del(node: ChurnNode, containerId: string, name: string, uid: string, what = "DEL"): Promise<void> {
    const attempts = this.o.delAttempts ?? 1;
    for (let attempt = 1; ; attempt++) {
      const d = await this.plugin(node, "DEL", { containerId, args: podArgs(this.o.ns, name, uid) });
      if (d.status === 0) return;
      if (attempt >= attempts)
        assert.unreachable(
          `${what} of ${name} on ${node.sim.name} (berth ${node.version}) failed ${attempt} time(s): ${d.stdout} ${d.stderr}\n${this.c.logTail(node.sim, 10)}`,
        );
      this.stats.delRetries++;
      await sleep(200);
    }
  }

  /**
   * The kubelet's ADD of pod NAME (UID `uid`) on `node`, with new sandboxes
   * until one succeeds (see the file comment). `env` goes to every attempt.
   */
  async add(name: string, uid: string, node: ChurnNode, set?: string, env?: Record<string, string>): Promise<Running> {
    let last = "";
    const attempts = this.o.addAttempts ?? 3;
    const started = Date.now();
    const more = (attempt: number) => (this.o.addBudgetMs !== undefined ? Date.now() - started < this.o.addBudgetMs : attempt <= attempts);
    let attempt = 0;
    while (more(++attempt)) {
      while (this.gcRunning.has(node.sim.name)) await this.gcRunning.get(node.sim.name);
      const containerId = randomBytes(32).toString("hex");
      const known = this.sandboxes.get(node.sim.name)!;
      known.add(containerId);
      const mark = this.o.requestLog?.mark();
      const t = Date.now();
      const o = await this.plugin(node, "ADD", { containerId, args: podArgs(this.o.ns, name, uid), env });
      this.stats.adds++;
      if (o.status === 0) {
        known.delete(containerId);
        return { name, uid, node, containerId, address: o.json.ips[0].address.split("/")[0], set };
      }
      last = `${o.stdout.trim()} ${o.stderr.trim()}`;
      this.stats.addRetries++;
      if (o.json?.code === 102 && !/is leased on this node to container/.test(o.json.msg)) {
        this.conflicts.push(`ADD ${name} (UID ${uid}) on ${node.sim.name} (berth ${node.version}) attempt ${attempt}: ${o.json.msg}`);
      }
      if (mark !== undefined && attempt >= 4 && attempt <= 5) {
        console.error(
          `[${this.o.tag}] ADD of ${name} on ${node.sim.name} failed ${attempt} times; this attempt took ${Date.now() - t} ms (${last.slice(0, 200)}); requests meanwhile:\n${this.o.requestLog!.since(mark)}`,
        );
      }
      // The kubelet: DEL of the failed sandbox, then a new one.
      await this.del(node, containerId, name, uid, "DEL after a failed ADD");
      known.delete(containerId);
      if (o.json?.code === 102 && /is leased on this node to container/.test(o.json.msg)) {
        this.stats.staleLeaseGcs++;
        await this.gc(node);
      } else if (this.o.faults) {
        this.stats.faultedAdds++;
        const why = String(o.json?.msg ?? last)
          .replace(/https:\/\/[\d.:]+/g, "SERVER")
          .replace(/\d+(\.\d+)*/g, "N")
          .replace(/\b[\w-]+\/[\w-]+\b/g, "NS/NAME")
          .slice(0, 120);
        this.faultReasons.set(why, (this.faultReasons.get(why) ?? 0) + 1);
      } else {
        this.failures.push(`ADD ${name} on ${node.sim.name} (berth ${node.version}) attempt ${attempt}: ${last}`);
      }
      await sleep(200);
    }
    throw new Error(
      `ADD of ${name} on ${node.sim.name} (berth ${node.version}) failed ${attempt - 1} times in ${((Date.now() - started) / 1000).toFixed(0)} s: ${last}\n${this.c.logTail(node.sim, 10)}`,
    );
  }

  /** The kubelet's last step: the pod object goes (grace period 0). */
  deleteNow(name: string): Promise<boolean> {
    return admin.delete(path("pods", { ns: this.o.ns, name }), { gracePeriodSeconds: 0 });
  }

  /** Removes a running pod: with the kubelet's DEL (terminating, DEL, final delete) or without (just gone). */
  async remove(r: Running, withDel: boolean): Promise<void> {
    this.live.delete(r.name);
    if (withDel) {
      await admin.delete(path("pods", { ns: this.o.ns, name: r.name })); // deletionTimestamp (bound: 30 s grace)
      await this.del(r.node, r.containerId, r.name, r.uid);
      this.stats.withDel++;
    } else {
      this.stats.withoutDel++;
    }
    await this.deleteNow(r.name);
    this.stats.cycles++;
  }

  /** A plain pod NAME on `node` (default: a random one): created bound, then ADD. */
  async createPlain(name: string, node = this.randomNode()): Promise<Running> {
    const created = await admin.create<StoredPod>(path("pods", { ns: this.o.ns }), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: this.o.ns, annotations: this.annotations },
      spec: { nodeName: node.sim.name, containers: [{ name: "app", image: "nginx" }] },
    });
    const r = await this.add(name, created.metadata.uid, node);
    this.live.set(name, r);
    return r;
  }

  /** A plain pod name not running now (names are reused, out of `pool` names). */
  freeName(pool: number): string {
    for (;;) {
      const n = `p-${this.plainCounter++ % pool}`;
      if (!this.live.has(n)) return n;
    }
  }

  /** Scheduler + kubelet for a member: waits for a new incarnation, binds it to `node` (default random), ADD; asserts its address came back. */
  async startMember(set: string, name: string, notUid?: string, node = this.randomNode()): Promise<Running> {
    const pod = await waitForAsync(
      `StatefulSet member ${name}${notUid ? ` (UID other than ${notUid})` : ""}`,
      async () => {
        const p = await admin.get<StoredPod>(path("pods", { ns: this.o.ns, name }));
        return p && !p.metadata.deletionTimestamp && p.metadata.uid !== notUid ? p : undefined;
      },
      20_000,
      100,
    );
    await admin.create(path("pods", { ns: this.o.ns, name, sub: "binding" }), {
      apiVersion: "v1",
      kind: "Binding",
      metadata: { name, namespace: this.o.ns },
      target: { apiVersion: "v1", kind: "Node", name: node.sim.name },
    });
    const r = await this.add(name, pod.metadata.uid, node, set);
    const want = this.binding.get(name);
    if (want !== undefined) {
      assert.is(r.address, want, `${name} came back (UID ${r.uid}, ${node.sim.name}, berth ${node.version}) with its address`);
      this.stats.sticky++;
    }
    this.binding.set(name, r.address);
    this.live.set(name, r);
    return r;
  }

  /** Deletes running member `r` (with or without DEL) and starts its next incarnation on `to`. */
  async moveMember(r: Running, to: ChurnNode, withDel: boolean): Promise<Running> {
    await this.remove(r, withDel);
    const next = await this.startMember(r.set!, r.name, r.uid, to);
    if (to.sim !== r.node.sim) this.stats.moves++;
    return next;
  }

  /** The start of a soak: StatefulSets `sets` of `replicas` members each, running, and `plain` plain pods (names from a pool of `plainNames`). */
  async populate(sets: string[], replicas: number, plain: number, plainNames: number): Promise<void> {
    for (const set of sets) this.createStatefulSet(set, replicas);
    await inBatches(
      sets.flatMap((s) => Array.from({ length: replicas }, (_, i) => [s, `${s}-${i}`])),
      this.parallel,
      ([s, n]) => this.startMember(s, n),
    );
    await inBatches(
      Array.from({ length: plain }, () => this.freeName(plainNames)),
      this.parallel,
      (n) => this.createPlain(n),
    );
  }

  createStatefulSet(set: string, replicas: number): void {
    apply(JSON.stringify(statefulSetManifest(this.o.ns, set, replicas, { parallel: true, templateAnnotations: this.annotations })));
    this.replicas.set(set, replicas);
  }

  async scale(set: string, n: number): Promise<void> {
    await admin.patch(path("statefulsets", { ns: this.o.ns, name: set }), { spec: { replicas: n } });
    this.replicas.set(set, n);
  }

  /** Scales `set` down by `by`; the StatefulSet controller deletes the top members: the first gets its DEL if `firstWithDel`, the others none. */
  async scaleDown(set: string, by: number, firstWithDel: boolean): Promise<void> {
    const n = this.replicas.get(set)!;
    await this.scale(set, n - by);
    const victims = Array.from({ length: by }, (_, i) => this.live.get(`${set}-${n - 1 - i}`)).filter((r): r is Running => !!r);
    await Promise.all(
      victims.map(async (r, i) => {
        await waitForAsync(
          `${r.name} to be terminating after the scale-down`,
          async () => {
            const p = await admin.get<StoredPod>(path("pods", { ns: this.o.ns, name: r.name }));
            return !p || !!p.metadata.deletionTimestamp;
          },
          20_000,
          100,
        );
        this.live.delete(r.name);
        this.binding.delete(r.name);
        if (i === 0 && firstWithDel) {
          await this.del(r.node, r.containerId, r.name, r.uid, "DEL of a scaled-down member");
          this.stats.withDel++;
        } else this.stats.withoutDel++;
        await this.deleteNow(r.name);
        this.stats.cycles++;
      }),
    );
    this.stats.scaleDowns++;
  }

  /** Scales `set` back to `to` and starts the new members. */
  async scaleUp(set: string, to: number): Promise<void> {
    const n = this.replicas.get(set)!;
    if (n >= to) return;
    await this.scale(set, to);
    await inBatches(
      Array.from({ length: to - n }, (_, i) => `${set}-${n + i}`),
      this.parallel,
      (name) => this.startMember(set, name),
    );
  }

  /**
   * One batch: `plain` plain pods removed and as many created (names reused),
   * `members` members deleted and recreated by the StatefulSet controller,
   * each on a random node, a removal with DEL with probability `withDel`.
   */
  async batch(o: { plain: number; members: number; plainNames: number; withDel?: number }): Promise<void> {
    const gone = pick(
      [...this.live.values()].filter((r) => !r.set),
      o.plain,
    );
    const members = [...this.live.values()].filter((r) => r.set && Number(r.name.slice(r.set.length + 1)) < this.replicas.get(r.set)!);
    const recycle = pick(members, o.members);
    await inBatches([...gone, ...recycle], this.parallel, (r) => this.remove(r, Math.random() < (o.withDel ?? 0.5)));
    const names = gone.map(() => this.freeName(o.plainNames));
    await Promise.all([
      inBatches(names, this.parallel, (n) => this.createPlain(n)),
      inBatches(recycle, this.parallel, async (r) => {
        const next = await this.startMember(r.set!, r.name, r.uid);
        if (next.node.sim !== r.node.sim) this.stats.moves++;
      }),
    ]);
  }

  listPods = () => admin.list<StoredPod>(path("pods", { ns: this.o.ns }));
  listClaims = async () => (await admin.list<Claim>(path(CLAIM_PLURAL))).filter((cl) => cl.spec.pool === this.o.pool);
  listEndpoints = () => admin.list<Endpoint>(path(ENDPOINT_PLURAL, { ns: this.o.ns }));

  /** The invariants that must hold at any quiet moment (see the file comment). `extra` names the controller's log tail for messages. */
  async check(when: string, extra: () => string = () => ""): Promise<void> {
    this.stats.checks++;
    const others = this.o.others?.() ?? { holders: [], namespaces: [] };
    const label = (ns: string, name: string) => (ns === this.o.ns ? name : `${ns}/${name}`);
    // 1. By the ADD results: the running pods' addresses are distinct.
    const byAddress = new Map<string, string[]>();
    const hold = (address: string, who: string) => byAddress.set(address, [...(byAddress.get(address) ?? []), who]);
    for (const r of this.live.values()) hold(r.address, r.name);
    for (const h of others.holders) hold(h.address, `${label(h.ns, h.name)} (${h.why})`);
    assert.equal(
      [...byAddress].filter(([, names]) => names.length > 1),
      [],
      `${when}: an address handed to two running pods`,
    );
    // 2. By the API: no address in two entries of living pods' endpoints (two pods, or two interfaces of one);
    //    every running pod's address claimed by it.
    const namespaces = [this.o.ns, ...others.namespaces.filter((ns) => ns !== this.o.ns)];
    const [perNs, allClaims] = await Promise.all([
      Promise.all(
        namespaces.map(async (ns) => ({ ns, pods: await listIn<StoredPod>(path("pods", { ns })), eps: await listIn<Endpoint>(path(ENDPOINT_PLURAL, { ns })) })),
      ),
      admin.list<Claim>(path(CLAIM_PLURAL)),
    ]);
    const held = new Set(others.holders.map((h) => `${h.ns}/${h.name}`));
    const epHolders = new Map<string, string[]>();
    for (const { ns, pods, eps } of perNs) {
      const living = new Set(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name));
      for (const e of eps) {
        if (!living.has(e.metadata.name) && !held.has(`${ns}/${e.metadata.name}`)) continue;
        for (const ip of e.spec.ips) {
          if (!ip.ipv4) continue;
          const a = ip.ipv4.split("/")[0];
          epHolders.set(a, [...(epHolders.get(a) ?? []), label(ns, e.metadata.name)]);
        }
      }
    }
    assert.equal(
      [...epHolders].filter(([, names]) => names.length > 1),
      [],
      `${when}: an address listed twice by living pods' endpoints (two pods, or two interfaces of one)\n${extra()}`,
    );
    const claimOf = new Map(allClaims.map((cl) => [cl.spec.address, cl]));
    for (const r of this.live.values()) {
      const cl = claimOf.get(r.address);
      assert.ok(
        cl && cl.spec.pool === this.o.pool && cl.spec.podName === r.name && cl.spec.podUID === r.uid,
        `${when}: running pod ${r.name} (UID ${r.uid}, ${r.node.sim.name}, berth ${r.node.version}) holds ${r.address}, but its claim is ${cl ? `${cl.spec.podName}/${cl.spec.podUID}` : "gone"}\n${extra()}`,
      );
      assert.ok(epHolders.get(r.address)?.includes(r.name), `${when}: running pod ${r.name}'s endpoint lists ${r.address}`);
    }
    for (const h of others.holders) {
      const cl = claimOf.get(h.address);
      const who = `${h.ns}/${h.name} (${h.why}, UID ${h.uid})`;
      assert.ok(
        cl && cl.spec.podNamespace === h.ns && cl.spec.podName === h.name && cl.spec.podUID === h.uid,
        `${when}: ${who} holds ${h.address}, but its claim is ${cl ? `${cl.spec.podNamespace}/${cl.spec.podName}/${cl.spec.podUID}` : "gone"}\n${extra()}`,
      );
      if (h.listed) assert.ok(epHolders.get(h.address)?.includes(label(h.ns, h.name)), `${when}: ${who}'s endpoint lists ${h.address}\n${extra()}`);
    }
  }

  /**
   * Claims of the pool that neither a living pod (same UID, listed in its
   * endpoint) nor an in-range StatefulSet member owns, and that `explain`
   * (given whether the endpoint lists the address, whether the churn's rules
   * would own it were it listed, and the pod of that name in the churn's
   * namespace) does not account for; `explained` counts its answers. The pool's status.
   */
  async unexplained(explain?: Explain): Promise<{
    claims: Claim[];
    unexplained: Claim[];
    explained: Map<string, number>;
    status: { allocatedIPCount?: number; totalIPCount?: number };
  }> {
    const [pods, claims, eps, sets, pool] = await Promise.all([
      this.listPods(),
      this.listClaims(),
      this.listEndpoints(),
      admin.list<StatefulSet>(path("statefulsets", { ns: this.o.ns })),
      admin.must<PoolObject>("GET", path(POOL_PLURAL, { name: this.o.pool })),
    ]);
    const podByName = new Map(pods.map((p) => [p.metadata.name, p]));
    const epByName = new Map(eps.map((e) => [e.metadata.name, e]));
    const setReplicas = new Map(sets.map((s) => [s.metadata.name, s.spec.replicas]));
    const explained = new Map<string, number>();
    const unexplained = claims.filter((cl) => {
      const { podNamespace, podName, podUID, statefulSet, address } = cl.spec;
      // Only the churn's namespace is judged here; another namespace's claims are for `explain`.
      const own = podNamespace === this.o.ns;
      const listed = own && !!epByName.get(podName)?.spec.ips.some((i) => i.ipv4?.split("/")[0] === address);
      const pod = own ? podByName.get(podName) : undefined;
      let owned: boolean;
      if (!own) owned = false;
      else if (statefulSet) {
        const ordinal = Number(podName.slice(statefulSet.length + 1));
        owned = setReplicas.has(statefulSet) && ordinal < setReplicas.get(statefulSet)!;
      } else owned = !!pod && pod.metadata.uid === podUID && !pod.metadata.deletionTimestamp;
      if (listed && owned) return false;
      const why = explain?.(cl, { listed, owned, pod });
      if (why === undefined) return true;
      explained.set(why, (explained.get(why) ?? 0) + 1);
      return false;
    });
    return { claims, unexplained, explained, status: pool.status ?? {} };
  }

  /**
   * Entries of the endpoints in the churn's namespace and `namespaces` whose
   * address's claim is gone or another pod's: phantom bindings.
   */
  async phantoms(namespaces: string[] = []): Promise<Phantom[]> {
    const all = [this.o.ns, ...namespaces.filter((ns) => ns !== this.o.ns)];
    const [perNs, claims] = await Promise.all([
      Promise.all(all.map(async (ns) => ({ ns, eps: await listIn<Endpoint>(path(ENDPOINT_PLURAL, { ns })) }))),
      admin.list<Claim>(path(CLAIM_PLURAL)),
    ]);
    const claimOf = new Map(claims.map((cl) => [cl.spec.address, cl]));
    const out: Phantom[] = [];
    for (const { ns, eps } of perNs) {
      for (const e of eps) {
        for (const ip of e.spec.ips) {
          if (!ip.ipv4) continue;
          const address = ip.ipv4.split("/")[0];
          const cl = claimOf.get(address);
          if (cl && cl.spec.podNamespace === ns && cl.spec.podName === e.metadata.name) continue;
          out.push({ ns, name: e.metadata.name, address, claimedBy: cl ? `${cl.spec.podNamespace}/${cl.spec.podName}` : "none" });
        }
      }
    }
    return out;
  }

  /**
   * Waits until every claim of the pool is owned (a living pod or an in-range
   * member, or as `explain` says) and, with `counts`, the pool's
   * allocatedIPCount equals the claims.
   */
  async converge(
    what: string,
    timeoutMs: number,
    counts: boolean,
    extra: () => string = () => "",
    explain?: Explain,
  ): Promise<{ claims: Claim[]; status: { allocatedIPCount?: number } }> {
    return waitForAsync(
      `${what}: every claim owned by a living pod or an in-range StatefulSet member${counts ? ", and the pool count to match" : ""}`,
      async () => {
        const p = await this.unexplained(explain);
        return p.unexplained.length === 0 && (!counts || p.status.allocatedIPCount === p.claims.length) ? p : undefined;
      },
      timeoutMs,
      500,
    ).catch(async (err) => {
      const p = await this.unexplained(explain);
      throw new Error(
        `${(err as Error).message}\nunexplained claims: ${JSON.stringify(p.unexplained.map((cl) => cl.spec))}\npool status ${JSON.stringify(p.status)} for ${p.claims.length} claims\n${extra()}`,
      );
    });
  }
}

/** The items of a namespaced list; none when the namespace is gone. */
async function listIn<T>(list: string): Promise<T[]> {
  const r = await admin.request<{ items: T[] }>("GET", list);
  if (r.status === 404) return [];
  if (r.status !== 200) throw new Error(`GET ${list}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body.items;
}
