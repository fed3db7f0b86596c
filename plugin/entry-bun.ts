/** Entry of the compiled binary (bun build --compile): bun:sqlite underneath. */

import { openBunSqlite } from "../store/bun-sqlite-driver.ts";
import { main } from "./main.ts";

// Exit as soon as the answer is written: keep-alive sockets or a request abandoned at a
// deadline must not hold the runtime waiting.
main(process.argv.slice(2), process.env, openBunSqlite).then((code) => process.exit(code));
