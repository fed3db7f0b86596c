/** Entry under Node (development, tests): better-sqlite3 underneath. */
import { main } from "./main.ts";
import { openBetterSqlite3 } from "../store/better-sqlite3-driver.ts";

process.exitCode = main(process.argv.slice(2), process.env, openBetterSqlite3);
