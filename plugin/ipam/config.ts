/**
 * The normalised network configuration every command works from. The CNI
 * layer builds it (cni/netconf.ts) and checks everything before any store is
 * opened; nothing below it parses raw input.
 */
import type { LogLevel } from "../support/logger.ts";
import type { Family } from "./ip.ts";
import type { Pool } from "./pool.ts";

/** Where the node's lease database lives unless `ipam.dataDir` says otherwise. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/berth";

/** The normalised `ipam` block. */
export interface IpamConfig {
  type: string;
  dataDir: string;
  /** `<dataDir>/berth.db` */
  dbPath: string;
  /** Present: cluster mode. Absent: local mode. */
  kubeconfig?: string;
  /** Cluster mode: if given, must be the pod's spec.nodeName (cluster/add-node.ts); the pod's node is used. */
  nodeName?: string;
  pools: Pool[];
  /** Pool names to try per family, in order (default_ipv4_ippool / default_ipv6_ippool). */
  defaultPools: Record<Family, string[]>;
  enableStatefulSet: boolean;
  logFile?: string;
  logLevel: LogLevel;
  /** Cluster mode: the longest an ADD may take before it rolls back (timeoutSeconds). */
  timeoutMs: number;
}

/** One attachment the runtime still considers valid (GC's `cni.dev/valid-attachments`). */
export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/** The normalised network configuration. */
export interface NetConf {
  cniVersion: string;
  /** Network name: leases are kept per network. */
  name: string;
  ipam: IpamConfig;
  /** Addresses of prevResult.ips (CHECK), as "addr/prefix". */
  prevIps?: string[];
  /** GC: undefined when the runtime sent no list at all. */
  validAttachments?: ValidAttachment[];
}
