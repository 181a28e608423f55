// The seed apps. Each is a module with:
//   id, title        its route (#/<id>) and name
//   schema           CREATE TABLE IF NOT EXISTS statements, run when the device opens
//   replicate        [table, policies] pairs: the tables it syncs and how columns merge
//   init(device)?    device-level work that must run while the app is not on screen
//   mount(el, device) → unmount
// All apps share the device's one local replica (and so its status, log and charts).
import * as sensors from "./sensors.js";
import * as transactions from "./transactions.js";
import * as chat from "./chat.js";
import * as inventory from "./inventory.js";
import * as editor from "./editor.js";

export const APPS = [sensors, transactions, chat, inventory, editor];
