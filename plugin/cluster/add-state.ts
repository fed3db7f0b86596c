/** What one cluster-mode ADD carries from step to step. */
import type { LeaseStore } from "../../store/lease-store.ts";
import type { NetConf } from "../ipam/config.ts";
import type { Family } from "../ipam/ip.ts";
import type { PodIdentity } from "../ipam/pod-identity.ts";
import type { Pool } from "../ipam/pool.ts";
import type { KubeApi } from "../kube/kube-api.ts";
import type { Logger } from "../support/logger.ts";
import type { Holder } from "./claims.ts";
import type { Deadline } from "./deadline.ts";
import type { UndoLog } from "./undo-log.ts";

/** What the command glue hands a cluster ADD. */
export interface ClusterAddInput {
  conf: NetConf;
  containerId: string;
  ifname: string;
  pod: PodIdentity;
  api: KubeApi;
  store: LeaseStore;
  log: Logger;
}

/** The ADD in progress: its input, its time budget, and what it would have to give back. */
export interface AddState extends ClusterAddInput {
  deadline: Deadline;
  undo: UndoLog;
  /** The node this ADD runs on: the pod's spec.nodeName (add-node.ts). */
  nodeName: string;
  /** What the ADD met on its way; one object shared by every copy of the state. */
  stats: AddStats;
}

/** Counters an ADD reports in its log. */
export interface AddStats {
  /** Creates the API server refused with AlreadyExists: someone else had the address. */
  conflicts: number;
}

/** The ADD once it knows who the addresses are for. */
export interface Claiming extends AddState {
  holder: Holder;
}

/** One address this ADD holds: its claim exists and a pending local lease records it. */
export interface Taken {
  family: Family;
  address: string;
  pool: Pool;
  leaseId: number;
}
