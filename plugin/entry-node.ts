/** Entry under Node (development, tests): better-sqlite3 underneath. */

import { openBetterSqlite3 } from "../store/better-sqlite3-driver.ts";
import { main } from "./main.ts";

// Exit as soon as the answer is written: keep-alive sockets or a request abandoned at a
// deadline must not hold the runtime waiting.
main(process.argv.slice(2), process.env, openBetterSqlite3).then((code) => process.exit(code));
