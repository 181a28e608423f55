// A Node program written as for @libsql/client, plus edgesync's replica API, compiled
// with `strict` and `module: nodenext` against the package's declarations.
import { createClient, createEmbeddedReplica, LibsqlError, LibsqlBatchError, GCounter, Text } from "edgesync";
import type { Client, Config, ErrorCode, InArgs, ResultSet, Row, Transaction, TransactionMode, Value, EmbeddedReplica, SyncStatus } from "edgesync";
import { createClient as createRemote } from "edgesync/client";
import { PNCounter } from "edgesync/crdt";
import { createClient as createReplicaOnly } from "edgesync/replica";
// @ts-expect-error: the shared scenario is plain JS (checked at run time).
import { scenario } from "./scenario.js";

const [url, authToken] = process.argv.slice(2);

// A config read from the environment: `url: string` with replica fields is a replica.
const replicaConfig = { url: process.env.LOCAL_URL ?? ":memory:", syncUrl: url, authToken, syncInterval: 60 };
const replica = createClient(replicaConfig);
await replica.execute("create table if not exists typed_notes (id text primary key, body text)");
replica.replicate("typed_notes", { body: "lww" });
const status: SyncStatus = replica.status();
replica.close();

// A config kept in a variable of @libsql/client's type: a Client, and sync() is there.
const config: Config = { url, authToken, intMode: "bigint", tls: false, concurrency: 4 };
const client: Client = createClient(config);
const direct: EmbeddedReplica = createEmbeddedReplica({ url: ":memory:" });
direct.close();

async function typed(c: Client): Promise<string[]> {
  const args: InArgs = [1n, "x", new Uint8Array([1]), null, true, new Date(0)];
  const rs: ResultSet = await c.execute({ sql: "select ?, ?, ?, ?, ?, ?", args });
  const row: Row = rs.rows[0];
  const first: Value = row[0];
  const mode: TransactionMode = "write";
  const tx: Transaction = await c.transaction(mode);
  await tx.execute("select 1");
  await tx.commit();
  let code: ErrorCode | undefined;
  try {
    await c.batch(["select 1", "selec 2"], "read");
  } catch (e) {
    if (e instanceof LibsqlBatchError) code = e.code;
    else if (e instanceof LibsqlError) code = e.code;
  }
  return [typeof first, String(code), String(tx.closed), String(status.pendingChanges)];
}

const counter = new PNCounter("node-ts");
counter.increment(2);
const text = new Text();
text.insert(0, "hi");
const anchor = text.anchor(1, "after");
const g = new GCounter(1n);
g.increment();

const types = await typed(client);
client.close();
const remoteOnly = createRemote({ url, authToken });
await remoteOnly.execute("select 1");
remoteOnly.close();
const replicaOnly = createReplicaOnly({ url: ":memory:" });
await replicaOnly.execute("select 1");
replicaOnly.close();

const result = await scenario(url, authToken, "node_ts");
console.log(JSON.stringify({ ...result, types, counter: counter.value(), anchor: text.resolve(anchor), g: g.value() }));
