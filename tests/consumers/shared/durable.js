// What every browser consumer page runs besides the scenario: a `file:` replica, kept in
// OPFS by the package's own worker (where the bundler shipped it), written, closed and
// opened again — from `edgesync`, then from `edgesync/replica` (pre-bundled in the
// package: its own file, its worker named from there). Returns what each saw, and the
// `storage` event's word on where it was kept.
import { createClient } from "edgesync";
import { createClient as createReplica } from "edgesync/replica";

export async function durable(url, authToken, name) {
  const full = await durableWith(createClient, `file:consumer-${name}.db`, url, authToken, name);
  const replica = await durableWith(createReplica, `file:consumer-${name}-replica.db`, url, authToken, name);
  return { ...full, replica };
}

async function durableWith(createClient, path, url, authToken, name) {
  // The `storage` event says where the store is kept, once it is open.
  const opened = (db) => new Promise((resolve) => db.on("storage", resolve));
  // status() is the last state the worker sent (at most every 50 ms): give it a moment.
  const persistent = async (db) => {
    for (let i = 0; i < 40 && !db.status().persistent; i++) await new Promise((r) => setTimeout(r, 50));
    return db.status().persistent;
  };
  let db = createClient({ url: path, syncUrl: url, authToken });
  const said = opened(db);
  await db.execute("create table if not exists kept (id integer primary key, v text)");
  await db.replicate("kept");
  await db.execute({ sql: "insert or replace into kept values (1, ?)", args: [`kept by ${name}`] });
  const synced = await db.sync();
  const storage = await said;
  const first = await persistent(db);
  await db.close();
  db = createClient({ url: path, syncUrl: url, authToken });
  const saidAgain = opened(db);
  let kept = null;
  try {
    kept = (await db.execute("select v from kept where id = 1")).rows[0]?.v ?? null;
  } catch (e) {
    kept = `${e?.code}`; // in memory: the table is gone with the first client
  }
  await saidAgain;
  const again = await persistent(db);
  await db.close();
  return { persistent: [first, again], kept, pushed: synced.changesPushed, storage };
}
