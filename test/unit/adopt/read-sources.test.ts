/** Reading the other IPAMs' records: Whereabouts' offsets and reservation names, Spiderpool's status string and endpoints. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { adoptOptions } from "../../../plugin/adopt/adopt-options.ts";
import { readSpiderpool } from "../../../plugin/adopt/read-spiderpool.ts";
import { readWhereabouts } from "../../../plugin/adopt/read-whereabouts.ts";
import type { AdoptApi } from "../../../plugin/kube/adopt-client.ts";
import type { PoolObject } from "../../../plugin/kube/kube-api.ts";
import { KubeRequestError } from "../../../plugin/kube/kube-errors.ts";
import type { OverlappingReservation, SpiderEndpoint, SpiderReservedIP, WhereaboutsPool } from "../../../plugin/kube/peer-objects.ts";

/** Only the lists the readers call; anything else is a mistake of the reader. */
function source(o: {
  ippools?: WhereaboutsPool[];
  reservations?: OverlappingReservation[];
  pools?: PoolObject[];
  endpoints?: SpiderEndpoint[] | "absent";
  reserved?: SpiderReservedIP[] | "absent";
}): AdoptApi {
  const absent = () => Promise.reject(new KubeRequestError(404, "list: 404 the server could not find the requested resource"));
  return {
    listWhereaboutsPools: async () => o.ippools ?? [],
    listOverlappingReservations: async () => o.reservations ?? [],
    listPools: async () => o.pools ?? [],
    listSpiderEndpoints: () => (o.endpoints === "absent" ? absent() : Promise.resolve(o.endpoints ?? [])),
    listSpiderReservedIPs: () => (o.reserved === "absent" ? absent() : Promise.resolve(o.reserved ?? [])),
  } as unknown as AdoptApi;
}

test("Whereabouts: offsets count from the range's network address, host bits or not; reservations by name (IPv6 with dashes)", async () => {
  const read = await readWhereabouts(
    source({
      ippools: [
        {
          metadata: { name: "10.6.195.224-28", namespace: "kube-system" },
          spec: { range: "10.6.195.225/28", allocations: { "3": { id: "c1", podref: "a/p1" } } },
        },
        {
          metadata: { name: "fd00-6-195---64", namespace: "kube-system" },
          spec: { range: "fd00:6:195::/64", allocations: { "16": { id: "c2", podref: "a/p2" } } },
        },
      ],
      reservations: [
        { metadata: { name: "10.6.195.227", namespace: "kube-system" }, spec: { containerid: "c1", podref: "a/p1" } },
        { metadata: { name: "fd00-6-195--10", namespace: "kube-system" }, spec: { containerid: "c2", podref: "a/p2" } },
      ],
    }),
  );
  assert.equal(
    read.records.map((r) => [r.address, r.family, `${r.namespace}/${r.name}`, r.containerId]),
    [
      ["10.6.195.227", 4, "a/p1", "c1"],
      ["fd00:6:195::10", 6, "a/p2", "c2"],
      ["10.6.195.227", 4, "a/p1", "c1"],
      ["fd00:6:195::10", 6, "a/p2", "c2"],
    ],
  );
  assert.equal(
    read.ranges.map((r) => r.range),
    ["10.6.195.224/28", "fd00:6:195::/64"],
  );
});

test("Whereabouts: a named network's reservations are named <network>-<address>", async () => {
  const read = await readWhereabouts(
    source({
      ippools: [{ metadata: { name: "net-a-fd00-6-195---64", namespace: "kube-system" }, spec: { range: "fd00:6:195::/64" } }],
      reservations: [
        { metadata: { name: "net-a-10.6.195.9", namespace: "kube-system" }, spec: { containerid: "c1", podref: "a/p1" } },
        { metadata: { name: "net-a-fd00-6-195--0", namespace: "kube-system" }, spec: { containerid: "c2", podref: "a/p2" } },
      ],
    }),
  );
  assert.equal(
    read.records.map((r) => r.address),
    ["10.6.195.9", "fd00:6:195::"],
  );
});

test("Whereabouts: a record that is not one is an error naming the object", async () => {
  const bad = (spec: WhereaboutsPool["spec"]) => readWhereabouts(source({ ippools: [{ metadata: { name: "x", namespace: "ns" }, spec }] }));
  await bad({ range: "10.6.195.0/28", allocations: { "99": { id: "c", podref: "a/b" } } }).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /IPPool ns\/x: allocation offset 99 lies outside 10\.6\.195\.0\/28/),
  );
  await bad({ range: "10.6.195.0/28", allocations: { "1": { id: "c", podref: "nopod" } } }).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /podref "nopod" is not "namespace\/name"/),
  );
  await bad({ range: "nonsense" }).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /spec\.range "nonsense" is not a CIDR/),
  );
});

test("Spiderpool: status.allocatedIPs with the endpoint's interface, node and owner; a second holder from an endpoint; reserved ranges", async () => {
  const pool = (name: string, allocated: Record<string, unknown>): PoolObject => ({
    metadata: { name },
    spec: { subnet: "10.6.196.0/24" },
    status: { allocatedIPs: JSON.stringify(allocated) } as PoolObject["status"],
  });
  const ep = (name: string, ip: string, owner?: string): SpiderEndpoint => ({
    metadata: { name, namespace: "a" },
    status: {
      current: { uid: `uid-${name}`, node: "n1", ips: [{ interface: "net2", ipv4: `${ip}/24`, ipv4Pool: "p" }] },
      ownerControllerType: owner ? "StatefulSet" : "Pod",
      ownerControllerName: owner ?? name,
    },
  });
  const read = await readSpiderpool(
    source({
      pools: [pool("p", { "10.6.196.1": { pod: "a/web-0", podUid: "u0" }, "10.6.196.2": { pod: "a/q1", podUid: "u1" } })],
      endpoints: [ep("web-0", "10.6.196.1", "web"), ep("q2", "10.6.196.2")],
      reserved: [{ metadata: { name: "r" }, spec: { ips: ["10.6.196.8-10.6.196.9", "10.6.196.20"] } }],
    }),
  );
  assert.equal(
    read.records.map((r) => [r.address, `${r.namespace}/${r.name}`, r.podUid, r.interface, r.node, r.statefulSet]),
    [
      ["10.6.196.1", "a/web-0", "u0", "net2", "n1", "web"],
      ["10.6.196.2", "a/q1", "u1", undefined, undefined, undefined],
      ["10.6.196.2", "a/q2", "uid-q2", "net2", "n1", undefined],
    ],
  );
  assert.equal(
    read.reserved.map((r) => r.address),
    ["10.6.196.8", "10.6.196.9", "10.6.196.20"],
  );
});

test("Spiderpool: without its SpiderEndpoint and SpiderReservedIP CRDs there are none; a bad status string is an error", async () => {
  const read = await readSpiderpool(source({ endpoints: "absent", reserved: "absent" }));
  assert.equal(read, { records: [], reserved: [], ranges: [] });
  await readSpiderpool(source({ pools: [{ metadata: { name: "p" }, spec: {}, status: { allocatedIPs: "{" } as PoolObject["status"] }] })).then(
    () => assert.unreachable(),
    (e) => assert.match(e.message, /SpiderIPPool p: status\.allocatedIPs is not JSON/),
  );
});

test("options: --from, -o, --interface, stray words", () => {
  const f = (o: Record<string, unknown>, rest: string[] = []) => adoptOptions({ _: [], ...o }, rest);
  assert.equal(f({ from: "spiderpool" }), { from: "spiderpool", dryRun: false, output: "table", interface: "net1" });
  assert.equal(f({ from: "whereabouts", "dry-run": true, o: "json", interface: "eth1", kubeconfig: "/k" }), {
    from: "whereabouts",
    kubeconfig: "/k",
    dryRun: true,
    output: "json",
    interface: "eth1",
  });
  assert.match(f({}) as string, /--from is required/);
  assert.match(f({ from: "host-local" }) as string, /--from must be whereabouts or spiderpool, got "host-local"/);
  assert.match(f({ from: "whereabouts", interface: "x".repeat(16) }) as string, /--interface must be an interface name/);
  assert.match(f({ from: "whereabouts" }, ["now"]) as string, /takes no arguments/);
});

test.run();
