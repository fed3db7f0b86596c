/** The seed's objects (../shared/seed/statefulset.zh_CN.md), shared by the cluster and real-node seed tests. */

/** Exactly the seed's pool. */
export const SEED_POOL = `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: test-ippool
spec:
  subnet: 10.6.0.0/16
  ips:
    - 10.6.168.101-10.6.168.110
`;

/** The seed's StatefulSet, plus serviceName (required by apps/v1) and a namespace; the multus annotation kept (berth ignores it). */
export function seedStatefulSet(ns: string): string {
  return `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: test-sts
  namespace: ${ns}
spec:
  serviceName: test-sts
  replicas: 2
  selector:
    matchLabels:
      app: test-sts
  template:
    metadata:
      annotations:
        ipam.spidernet.io/ippool: |-
            {      
              "ipv4": ["test-ippool"]
            }
        v1.multus-cni.io/default-network: kube-system/macvlan-ens192
      labels:
        app: test-sts
    spec:
      containers:
        - name: test-sts
          image: nginx
          imagePullPolicy: IfNotPresent
`;
}
