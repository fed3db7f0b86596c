/**
 * Phase 2 of the controller section: a StatefulSet of 10 whose members 5-9
 * lost their node (force-deleted, recreated unbound by the StatefulSet
 * controller, claims kept while in range); the time from `kubectl scale
 * --replicas 5` to all five claims gone, ROUNDS rounds. Then one round where
 * the members are still bound and Terminating (grace 3 s, no DEL): held past
 * their grace period, released once their pod objects are gone.
 */
import { NODES } from "../../../test/support/control-plane.ts";
import { inBatches, sleep } from "../lib.ts";
import { ANNOTATIONS, NS, pods, ROUNDS, STS, statefulsets, until } from "./config.ts";
import { add, type Ctx, forceDelete } from "./plugin.ts";

type Members = Map<string, { uid: string; address: string }>;

/** The members beyond ordinal 4: what scaling to 5 removes. */
const beyond = [5, 6, 7, 8, 9].map((i) => `${STS}-${i}`);

/** Scheduler + kubelet for a StatefulSet member: wait for a pod with a new UID, bind it, ADD. */
async function startMember(ctx: Ctx, name: string, node: string, notUid?: string): Promise<{ uid: string; address: string }> {
  const pod = await until(
    `${name}`,
    async () => {
      const r = await ctx.api.request("GET", `${pods}/${name}`);
      return r.status === 200 && !r.body.metadata.deletionTimestamp && r.body.metadata.uid !== notUid ? r.body : undefined;
    },
    30_000,
    20,
  );
  if (!pod.spec.nodeName) {
    await ctx.api.create(`${pods}/${name}/binding`, {
      apiVersion: "v1",
      kind: "Binding",
      metadata: { name, namespace: NS },
      target: { apiVersion: "v1", kind: "Node", name: node },
    });
  }
  return { uid: pod.metadata.uid, address: await add(ctx, { name, uid: pod.metadata.uid, node }) };
}

async function createStatefulSet(ctx: Ctx): Promise<void> {
  await ctx.api.create(statefulsets, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: STS, namespace: NS },
    spec: {
      serviceName: STS,
      replicas: 10,
      podManagementPolicy: "Parallel",
      selector: { matchLabels: { app: STS } },
      template: {
        metadata: { labels: { app: STS }, annotations: ANNOTATIONS },
        spec: { terminationGracePeriodSeconds: 3, automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      },
    },
  });
}

const scale = (ctx: Ctx, n: number) => ctx.api.patch(`${statefulsets}/${STS}`, { spec: { replicas: n } });
const claimGone = (ctx: Ctx, members: Members, n: string) => async () => !(await ctx.api.claimExists(members.get(n)!.address));

/** One round: members 5-9 lose their node, then scale 10 → 5; ms until all five claims are gone, and until each is. */
async function nodeLostRound(ctx: Ctx, members: Members, each: number[]): Promise<number> {
  // Their node dies: the pods are removed, the StatefulSet controller recreates them (unbound, nowhere to run).
  await Promise.all(beyond.map((n) => forceDelete(ctx.api, n)));
  await Promise.all(
    beyond.map((n) =>
      until(
        `${n} recreated`,
        async () => {
          const r = await ctx.api.request("GET", `${pods}/${n}`);
          return r.status === 200 && r.body.metadata.uid !== members.get(n)!.uid;
        },
        30_000,
        20,
      ),
    ),
  );
  await sleep(500);
  const t0 = performance.now();
  await scale(ctx, 5);
  await Promise.all(
    beyond.map(async (n) => {
      await until(`claim of ${n} released`, claimGone(ctx, members, n), 60_000, 5);
      each.push(performance.now() - t0);
    }),
  );
  return performance.now() - t0;
}

/**
 * Once more with the members still bound, Terminating (grace 3 s) and no DEL: held while their pod objects exist
 * (their DEL has not run), whatever the grace period; released once the objects are gone (the kubelet's last step).
 */
async function terminatingRound(ctx: Ctx, members: Members): Promise<{ afterGone: number; heldPastDeadlineMs: number }> {
  await scale(ctx, 5);
  let deadline = 0;
  await Promise.all(
    beyond.map(async (n) => {
      const p = await until(
        `${n} terminating`,
        async () => {
          const r = await ctx.api.request("GET", `${pods}/${n}`);
          return r.status === 200 && r.body.metadata.deletionTimestamp ? r.body : undefined;
        },
        30_000,
        20,
      );
      deadline = Math.max(deadline, Date.parse(p.metadata.deletionTimestamp) + 5000);
    }),
  );
  await sleep(Math.max(0, deadline + 3000 - Date.now()));
  for (const n of beyond) {
    if (!(await ctx.api.claimExists(members.get(n)!.address))) throw new Error(`${n}'s claim was released while its pod was still Terminating`);
  }
  const t0 = performance.now();
  await Promise.all(beyond.map((n) => forceDelete(ctx.api, n)));
  await Promise.all(beyond.map((n) => until(`claim of ${n} released`, claimGone(ctx, members, n), 60_000, 5)));
  const afterGone = performance.now() - t0;
  const heldPastDeadlineMs = Date.now() - deadline;
  return { afterGone, heldPastDeadlineMs };
}

/** Phase 2: scale 10 → 5 with members 5-9 gone with their node (recreated unbound); ms until all five claims are released. */
export async function scaleDown(ctx: Ctx): Promise<{ all: number[]; each: number[]; terminating: { afterGone: number; heldPastDeadlineMs: number } }> {
  await createStatefulSet(ctx);
  const members: Members = new Map();
  const up = async (ordinals: number[]) => {
    await inBatches(ordinals, 8, async (i) => members.set(`${STS}-${i}`, await startMember(ctx, `${STS}-${i}`, NODES[i % 3])));
  };
  await up([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const all: number[] = [];
  const each: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    all.push(await nodeLostRound(ctx, members, each));
    await scale(ctx, 10);
    await up([5, 6, 7, 8, 9]);
  }
  return { all, each, terminating: await terminatingRound(ctx, members) };
}
