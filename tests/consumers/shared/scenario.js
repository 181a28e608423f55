// What every consumer project runs: a remote query, and an embedded replica that syncs
// and sees the server's table. `edgesync` is the packed package. Returns what it saw.
import { createClient } from "edgesync";

export async function scenario(url, authToken, name) {
  const table = `consumer_${name}`;
  const remote = createClient({ url, authToken });
  await remote.execute(`create table if not exists ${table} (id integer primary key, v text, b blob)`);
  await remote.execute({ sql: `insert or replace into ${table} values (?, ?, ?)`, args: [1, `hello from ${name}`, new Uint8Array([1, 2, 3])] });
  const rs = await remote.execute({ sql: `select v, b from ${table} where id = ?`, args: [1] });
  remote.close();

  // The same server over a WebSocket, with an interactive transaction.
  const ws = createClient({ url: url.replace(/^http/, "ws"), authToken });
  const tx = await ws.transaction("write");
  await tx.execute({ sql: `update ${table} set v = v || ? where id = 1`, args: ["!"] });
  const inside = await tx.execute(`select v from ${table} where id = 1`);
  await tx.rollback();
  const overWs = await ws.execute(`select v from ${table} where id = 1`);
  const wsProtocol = ws.protocol;
  ws.close();

  const replica = createClient({ url: ":memory:", syncUrl: url, authToken });
  await replica.execute(`create table if not exists notes_${name} (id integer primary key, body text)`);
  replica.replicate(`notes_${name}`);
  await replica.execute({ sql: `insert into notes_${name} values (?, ?)`, args: [1, `note from ${name}`] });
  const synced = await replica.sync();
  const mirrored = await replica.execute(`select v from ${table} where id = 1`);
  const notes = await replica.execute(`select body from notes_${name}`);
  replica.close();
  return {
    remote: rs.rows[0].v,
    ws: [wsProtocol, inside.rows[0].v, overWs.rows[0].v],
    blob: Array.from(new Uint8Array(rs.rows[0].b)),
    pushed: synced.changesPushed,
    mirrored: mirrored.rows[0].v,
    notes: notes.rows.map((r) => r.body),
  };
}
