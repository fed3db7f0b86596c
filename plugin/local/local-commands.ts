/** Local mode's command table: leases in the node's SQLite database, no API server. */
import type { CommandTable } from "../ipam/command.ts";
import { localAdd } from "./local-add.ts";
import { localCheck } from "./local-check.ts";
import { localDel } from "./local-del.ts";
import { localGc } from "./local-gc.ts";
import { localStatus } from "./local-status.ts";

export const localCommands: CommandTable = { ADD: localAdd, DEL: localDel, CHECK: localCheck, GC: localGc, STATUS: localStatus };
