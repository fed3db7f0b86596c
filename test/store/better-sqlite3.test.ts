import { openBetterSqlite3 } from "../../store/better-sqlite3-driver.ts";
import { driverContract } from "./driver-contract.ts";

driverContract("better-sqlite3", openBetterSqlite3);
