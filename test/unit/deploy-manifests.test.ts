/**
 * fixtures/deploy/ agrees with itself, with fixtures/rbac.yaml and with the
 * code: one image name, ServiceAccounts that exist and are bound, host paths
 * where `berth install` writes by default, a network configuration berth accepts.
 * (The API server's view of them is checked by hand with a server-side dry run.)
 */

import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseNetConf } from "../../plugin/cni/netconf.ts";
import { DEFAULT_PREFIXES } from "../../plugin/cni/path-policy.ts";
import { INSTALL_DEFAULTS } from "../../plugin/install/install.ts";

const root = resolve(import.meta.dirname, "../..");
const deployDir = join(root, "fixtures/deploy");
const load = (path: string): any[] => loadAllYaml(readFileSync(path, "utf8")).filter(Boolean);
const manifests = readdirSync(deployDir)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const objects = manifests.flatMap((f) => load(join(deployDir, f)).map((o) => ({ file: f, o })));
const rbac = load(join(root, "fixtures/rbac.yaml"));
const find = (kind: string, name: string) => objects.find(({ o }) => o.kind === kind && o.metadata?.name === name)?.o;
const workloads = objects.filter(({ o }) => o.spec?.template?.spec);
const podSpecs = workloads.map(({ file, o }) => ({ file, name: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec }));
const daemonSet = find("DaemonSet", "berth");
const controller = find("Deployment", "berth-controller");

test("the deploy files are there and every object is named, in kube-system", () => {
  assert.equal(manifests, ["controller.yaml", "daemonset.yaml", "network-attachment-definition.yaml"]);
  assert.ok(daemonSet, "DaemonSet berth");
  assert.ok(controller, "Deployment berth-controller");
  assert.ok(find("NetworkAttachmentDefinition", "macvlan-ens192"), "NetworkAttachmentDefinition macvlan-ens192");
  for (const { file, o } of objects) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${file}: apiVersion, kind, metadata.name`);
    assert.is(o.metadata.namespace, "kube-system", `${file}: ${o.kind}/${o.metadata.name}`);
  }
});

test("every container of every manifest runs one image, the one the Dockerfile builds", () => {
  const images = podSpecs.flatMap(({ spec }) => [...(spec.initContainers ?? []), ...spec.containers].map((c: any) => c.image));
  assert.ok(images.length >= 2, images.join(", "));
  const names = [...new Set(images)];
  assert.is(names.length, 1, `one image name, got ${names.join(", ")}`);
  const [image] = names;
  assert.match(image, /^[a-z0-9.-]+(\/[a-z0-9._-]+)+:\d+\.\d+\.\d+$/, "a registry path with a version tag, never :latest");
  const dockerfile = readFileSync(join(deployDir, "Dockerfile"), "utf8");
  assert.ok(dockerfile.includes(`-t ${image} `), `the Dockerfile's build command tags ${image}`);
  const tag = image.split(":").pop();
  for (const { o } of workloads) assert.is(o.metadata.labels?.["app.kubernetes.io/version"], tag, `${o.kind}/${o.metadata.name} version label`);
});

test("the ServiceAccounts the workloads use exist in fixtures/rbac.yaml and are bound to a role", () => {
  for (const { name, spec } of podSpecs) {
    const sa = spec.serviceAccountName;
    assert.ok(sa, `${name} names its ServiceAccount (not default)`);
    assert.ok(
      rbac.some((o) => o.kind === "ServiceAccount" && o.metadata.name === sa && o.metadata.namespace === "kube-system"),
      `${name}: ServiceAccount kube-system/${sa}`,
    );
    const bound = rbac.filter(
      (o) => o.kind.endsWith("Binding") && o.subjects?.some((s: any) => s.kind === "ServiceAccount" && s.name === sa && s.namespace === "kube-system"),
    );
    assert.ok(bound.length > 0, `${name}: kube-system/${sa} is bound`);
  }
  assert.is(daemonSet.spec.template.spec.serviceAccountName, "berth");
  assert.is(controller.spec.template.spec.serviceAccountName, "berth-controller");
  // The controller's default Lease is the one its Role lets it update.
  const leader = rbac.find((o) => o.kind === "Role" && o.metadata.name === "berth-controller-leader");
  const args: string[] = controller.spec.template.spec.containers[0].args;
  assert.not.ok(
    args.some((a) => a.startsWith("--lease-name") || a.startsWith("--lease-namespace")),
    "the default Lease kube-system/berth-controller",
  );
  assert.ok(leader.rules.some((r: any) => r.resourceNames?.includes("berth-controller") && r.verbs.includes("update")));
  // It reads node readiness (Terminating pods on nodes that are not Ready keep their addresses).
  const role = rbac.find((o) => o.kind === "ClusterRole" && o.metadata.name === "berth-controller");
  const nodes = role.rules.find((r: any) => r.apiGroups.includes("") && r.resources.includes("nodes"));
  assert.equal(nodes?.verbs, ["get", "list", "watch"], "the controller may get, list and watch nodes");
});

test("the DaemonSet runs berth install on every node with the host directories where install writes by default", () => {
  const spec = daemonSet.spec.template.spec;
  const [c] = spec.containers;
  assert.is(c.args[0], "install");
  assert.not.ok(c.args.includes("--once"), "keeps running to refresh the kubeconfig");
  assert.is(daemonSet.spec.updateStrategy.type, "RollingUpdate");
  assert.ok(
    spec.tolerations.some((t: any) => t.operator === "Exists" && !t.key && !t.effect),
    "tolerates every taint",
  );
  assert.ok(c.resources?.requests && c.resources?.limits, "resources");
  const hostPathAt = (mountPath: string) => {
    const m = c.volumeMounts.find((v: any) => v.mountPath === mountPath);
    assert.ok(m, `a mount at ${mountPath}`);
    return spec.volumes.find((v: any) => v.name === m.name)?.hostPath?.path;
  };
  assert.is(hostPathAt(INSTALL_DEFAULTS.cniBinDir), "/opt/cni/bin");
  assert.is(hostPathAt("/host/etc/cni/net.d"), "/etc/cni/net.d");
  assert.ok(INSTALL_DEFAULTS.kubeconfigOut.startsWith("/host/etc/cni/net.d/"), INSTALL_DEFAULTS.kubeconfigOut);
  // What install writes is where the plugin accepts a kubeconfig without the node's say-so.
  const onHost = INSTALL_DEFAULTS.kubeconfigOut.replace(/^\/host/, "");
  assert.ok(
    DEFAULT_PREFIXES.kubeconfig.some((p) => onHost.startsWith(p)),
    `${onHost} outside ${DEFAULT_PREFIXES.kubeconfig.join(", ")}`,
  );
});

test("the DaemonSet is Ready only once install has done its work: an exec readiness probe of berth install --check", () => {
  const [c] = daemonSet.spec.template.spec.containers;
  const probe = c.readinessProbe;
  assert.ok(probe?.exec, "an exec probe (the image has no shell)");
  const [exe, ...probeArgs] = probe.exec.command;
  const dockerfile = readFileSync(join(deployDir, "Dockerfile"), "utf8");
  assert.ok(dockerfile.includes(`ENTRYPOINT ["${exe}"]`), `${exe} is the image's berth`);
  assert.equal(probeArgs.slice(0, 2), ["install", "--check"]);
  // The probe must look where the installer writes: any path flag of the container is the probe's too.
  const pathFlags = (args: string[]) => args.filter((a) => /^--(source|cni-bin-dir|kubeconfig-out)\b/.test(a));
  assert.equal(pathFlags(probeArgs), pathFlags(c.args));
  // Cheap and prompt: it runs on every node for the pod's life.
  assert.ok(probe.periodSeconds >= 10 && probe.periodSeconds <= 30, `periodSeconds ${probe.periodSeconds}`);
  assert.ok(probe.timeoutSeconds > 1 && probe.timeoutSeconds < probe.periodSeconds, `timeoutSeconds ${probe.timeoutSeconds}`);
  assert.is(c.startupProbe, undefined, "no startup probe: readiness alone gates rollout status");
});

test("the example NetworkAttachmentDefinition is a valid berth cluster-mode configuration naming the kubeconfig install writes", () => {
  const nad = find("NetworkAttachmentDefinition", "macvlan-ens192");
  assert.is(nad.apiVersion, "k8s.cni.cncf.io/v1");
  const raw = JSON.parse(nad.spec.config);
  assert.is(raw.type, "macvlan");
  assert.is(raw.master, "ens192");
  const conf = parseNetConf(nad.spec.config);
  assert.is(conf.name, "macvlan-ens192");
  assert.is(conf.ipam.type, "berth");
  // The host sees /host/etc/cni/net.d/... of the installer's pod as /etc/cni/net.d/...
  assert.is(conf.ipam.kubeconfig, INSTALL_DEFAULTS.kubeconfigOut.replace(/^\/host/, ""));
});

test("the controller: 2 replicas, berth controller, /healthz probes and /metrics on 9542 behind a Service", () => {
  assert.is(controller.spec.replicas, 2);
  const [c] = controller.spec.template.spec.containers;
  assert.is(c.args[0], "controller");
  const port = c.ports.find((p: any) => p.containerPort === 9542);
  assert.ok(port, "container port 9542");
  for (const probe of [c.livenessProbe, c.readinessProbe]) {
    assert.is(probe.httpGet.path, "/healthz");
    assert.ok(probe.httpGet.port === 9542 || probe.httpGet.port === port.name);
  }
  const svc = objects.find(({ o }) => o.kind === "Service")?.o;
  assert.ok(svc, "a Service for scraping");
  assert.equal(svc.spec.selector, controller.spec.selector.matchLabels);
  assert.ok(svc.spec.ports.some((p: any) => p.targetPort === port.name || p.targetPort === 9542));
  assert.is(svc.metadata.annotations?.["prometheus.io/path"], "/metrics");
});

test.run();
