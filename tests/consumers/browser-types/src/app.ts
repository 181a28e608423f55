// A browser app's view of the package: no @types/node, no skipLibCheck.
import { createClient, ready, LibsqlError, Text } from "edgesync";
import type { Client, EmbeddedReplica, ResultSet } from "edgesync";
import { createClient as createRemote } from "edgesync/client";
import { GCounter, ready as crdtReady } from "edgesync/crdt";
import { createClient as createReplica } from "edgesync/replica";

export async function main(url: string): Promise<string> {
  await ready;
  await crdtReady;
  const remote: Client = createRemote({ url, fetch: (req: Request) => fetch(req) });
  const rs: ResultSet = await remote.execute("select 1 as one");
  const local: EmbeddedReplica = createReplica({ url: "file:app.db", syncUrl: url });
  const db = createClient({ url: ":memory:" });
  const t = new Text("site");
  const g = new GCounter();
  g.increment(1);
  try {
    await db.execute("selec");
  } catch (e) {
    if (e instanceof LibsqlError) return e.code;
  }
  return `${rs.rows[0].one} ${local.protocol} ${t.length} ${g.value()}`;
}
