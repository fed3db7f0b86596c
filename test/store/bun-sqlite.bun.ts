// Runs under bun (bun:sqlite exists only there): `bun test/store/bun-sqlite.bun.ts`.

import { openBunSqlite } from "../../store/bun-sqlite-driver.ts";
import { driverContract } from "./driver-contract.ts";

driverContract("bun:sqlite", openBunSqlite);
