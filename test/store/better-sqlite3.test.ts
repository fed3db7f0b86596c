import { driverContract } from "./driver-contract.ts";
import { openBetterSqlite3 } from "../../store/better-sqlite3-driver.ts";

driverContract("better-sqlite3", openBetterSqlite3);
