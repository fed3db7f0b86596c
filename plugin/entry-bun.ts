/** Entry of the compiled binary (bun build --compile): bun:sqlite underneath. */
import { main } from "./main.ts";
import { openBunSqlite } from "../store/bun-sqlite-driver.ts";

process.exitCode = main(process.argv.slice(2), process.env, openBunSqlite);
