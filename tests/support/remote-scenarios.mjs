// The scenarios of tests/js/compat-remote.test.mjs: statements run in order on @libsql/client
// and on edgesync, whose outcomes must be the same.
/** The statements every protocol runs, in order. */
export function scenarios(t) {
  return [
    ["create", (c) => c.execute(`create table ${t}(id integer primary key, x text unique not null, v)`)],
    ["insert", (c) => c.execute({ sql: `insert into ${t} values (?, ?, ?)`, args: [1, "a", 1.5] })],
    ["insert named", (c) => c.execute({ sql: `insert into ${t} values (:id, $x, @v)`, args: { id: 2, $x: "b", "@v": null } })],
    ["positional shorthand", (c) => c.execute(`insert into ${t} values (?, ?, ?)`, [3, "c", 7n])],
    [
      "every value type",
      (c) =>
        c.execute({
          sql: "select ? n, ? i, ? f, ? s, ? b, ? ab, ? t, ? fl, ? d, typeof(?) tn, ? / 2 h",
          args: [null, 12n, 0.1 + 0.2, "héllo ✓ 🦀", new Uint8Array([0, 1, 255]), new Uint8Array([9, 8]).buffer, true, false, new Date(1700000000123), 3, 5],
        }),
    ],
    ["blob and bigint in toJSON", (c) => c.execute("select x'00ff10' b, 9223372036854775807 - 1 + 1 as big").then((rs) => JSON.stringify(rs)).catch((e) => e.constructor.name)],
    ["integer beyond 2^53 with intMode number", (c) => c.execute("select 9007199254740993"), { message: false }],
    ["rows by name and index", (c) => c.execute(`select id, x, v, id as id from ${t} order by id`)],
    ["syntax error", (c) => c.execute("selec 1")],
    ["no such table", (c) => c.execute("select * from nope")],
    ["unique constraint", (c) => c.execute(`insert into ${t} values (1, 'z', 0)`)],
    ["not null", (c) => c.execute(`insert into ${t} values (9, null, 0)`)],
    ["too many arguments", (c) => c.execute("select ?", [1, 2])],
    ["missing argument", (c) => c.execute("select ?, ?", [1])],
    ["missing named argument", (c) => c.execute({ sql: "select :a", args: { b: 1 } })],
    ["two statements", (c) => c.execute("select 1; select 2")],
    ["no statement", (c) => c.execute("")],
    ["NaN", (c) => c.execute("select ?", [NaN]), { message: false }],
    ["Infinity", (c) => c.execute("select ?", [Infinity]), { message: false }],
    ["bigint beyond 64 bits", (c) => c.execute("select ?", [2n ** 70n]), { message: false }],
    ["undefined", (c) => c.execute("select ?", [undefined]), { message: false }],
    ["undefined named", (c) => c.execute({ sql: "select :a", args: { a: undefined } }), { message: false }],
    ["batch", (c) => c.batch([`insert into ${t} values (10, 'j', 1)`, { sql: `select count(*) n from ${t}`, args: [] }, [`select ? v`, [4]]], "write")],
    // The official client repeats the code in a batch error's message (docs/compatibility.md).
    ["batch rolls back and names the statement", (c) => c.batch([`insert into ${t} values (11, 'k', 1)`, `insert into ${t} values (11, 'k', 1)`], "write"), { message: false }],
    ["after the failed batch", (c) => c.execute(`select count(*) n from ${t} where id = 11`)],
    ["batch with a bad mode", (c) => c.batch(["select 1"], "nope"), { message: false }],
    ["empty batch", (c) => c.batch([])],
    ["read batch", (c) => c.batch([`select count(*) from ${t}`], "read")],
    ["executeMultiple", (c) => c.executeMultiple(`create table ${t}_m(a); insert into ${t}_m values (1); insert into ${t}_m values (2);`)],
    ["executeMultiple result", (c) => c.execute(`select * from ${t}_m`)],
    ["executeMultiple failing", (c) => c.executeMultiple(`insert into ${t}_m values (3); selec;`)],
    ["executeMultiple stopped at the failure", (c) => c.execute(`select count(*) n from ${t}_m`)],
    [
      "migrate with foreign keys",
      (c) =>
        c.migrate([
          `create table ${t}_p(id integer primary key)`,
          `create table ${t}_c(id integer primary key, p integer references ${t}_p(id))`,
          `insert into ${t}_c values (1, 99)`,
        ]),
    ],
    ["migrate failing", (c) => c.migrate([`insert into ${t}_p values (1)`, `insert into ${t}_p values (1)`]), { message: false }],
    [
      "transaction: write, read it, roll back",
      async (c) => {
        const tx = await c.transaction("write");
        const a = await tx.execute(`insert into ${t} values (20, 't', 0)`);
        const b = await tx.execute({ sql: `select count(*) n from ${t} where id = ?`, args: [20] });
        await tx.rollback();
        return [a, b, tx.closed, await c.execute(`select count(*) n from ${t} where id = 20`)];
      },
    ],
    [
      "transaction: batch with a failing statement, then commit",
      async (c) => {
        const tx = await c.transaction("write");
        let err;
        try {
          await tx.batch([`insert into ${t} values (21, 'u', 0)`, `insert into ${t} values (21, 'u', 0)`]);
        } catch (e) {
          err = [e.name, e.code, e.statementIndex];
        }
        const closedAfterError = tx.closed;
        await tx.commit();
        return [err, closedAfterError, tx.closed, await c.execute(`select x from ${t} where id = 21`)];
      },
    ],
    [
      "transaction: execute after commit",
      async (c) => {
        const tx = await c.transaction("deferred");
        await tx.execute("select 1");
        await tx.commit();
        return tx.execute("select 1");
      },
    ],
    [
      "transaction: executeMultiple inside",
      async (c) => {
        const tx = await c.transaction("write");
        await tx.executeMultiple(`insert into ${t} values (22, 'w', 0); insert into ${t} values (23, 'y', 0);`);
        await tx.commit();
        return c.execute(`select id from ${t} where id >= 22 order by id`);
      },
    ],
    [
      "transaction: close rolls back",
      async (c) => {
        const tx = await c.transaction("write");
        await tx.execute(`insert into ${t} values (24, 'zz', 0)`);
        tx.close();
        await new Promise((r) => setTimeout(r, 50));
        return [tx.closed, await c.execute(`select count(*) n from ${t} where id = 24`)];
      },
    ],
    [
      "transaction: commit and rollback with nothing sent",
      async (c) => {
        const a = await c.transaction("write");
        await a.commit();
        const b = await c.transaction("read");
        await b.rollback();
        return [a.closed, b.closed];
      },
    ],
    ["transaction with a bad mode", (c) => c.transaction("nope").then((tx) => tx.execute("select 1")), { message: false }],
    ["sync() on a remote client", (c) => c.sync(), { message: false }],
    ["protocol", (c) => c.protocol],
  ];
}

