/**
 * Embedded replicas inside SQLite-backed Durable Objects (Cloudflare Workers): the
 * replica's database file lives in the object's own storage, so it survives eviction and
 * restarts. `durableObjectFiles(ctx.storage, name)` gives the object a directory (`name`:
 * unique per object in the isolate, e.g. `ctx.id.toString()`); a replica
 * opened there is an ordinary `file:` replica:
 *
 * ```ts
 * import { createClient, durableObjectFiles } from "edgesync";
 * export class EdgeReplica extends DurableObject {
 *   db = createClient({
 *     url: `file:${durableObjectFiles(this.ctx.storage, this.ctx.id.toString())}/replica.db`,
 *     syncUrl: this.env.LIBSQL_URL,
 *     authToken: this.env.LIBSQL_AUTH_TOKEN,
 *   });
 * }
 * ```
 *
 * How: SQLite's VFS calls are synchronous, and so is a SQLite-backed object's storage
 * API. The host VFS (src/store/vfs/) gets a file system whose files are blocks of 4 KiB
 * (one SQLite page) in a table of the object's SQLite storage (`_es_files`), written
 * through on every write and kept in memory for reads. Everything a Durable Object
 * writes between two awaits commits as one transaction, and a replica's SQLite
 * transaction runs inside one synchronous call: a commit reaches storage whole or not at
 * all. The measurements behind this design are in docs/decisions.md ("Edge replicas in
 * Durable Objects").
 */
import { useNodeFs } from "./wasm/edgesync.js";

/** The part of `DurableObjectStorage` used here (SQLite-backed objects). */
export interface DurableObjectSqlStorage {
  sql: {
    exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[] };
  };
}

/** One SQLite page per block: page writes touch one block, WAL frames two. */
const BLOCK = 4096;

class Root {
  constructor(readonly storage: DurableObjectSqlStorage) {
    storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS _es_files (path TEXT NOT NULL, blk INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (path, blk)) WITHOUT ROWID",
    );
    storage.sql.exec("CREATE TABLE IF NOT EXISTS _es_file_size (path TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID");
  }
  /** path → size, and path → cached blocks. */
  sizes = new Map<string, number>();
  blocks = new Map<string, Map<number, Uint8Array>>();
}

interface Open {
  root: Root;
  path: string;
}

const enoent = (path: string) => Object.assign(new Error(`no such file: ${path}`), { code: "ENOENT" });
const eexist = (path: string) => Object.assign(new Error(`file exists: ${path}`), { code: "EEXIST" });
const ebadf = () => Object.assign(new Error("bad file descriptor"), { code: "EBADF" });

/** The files of every Durable Object of this isolate, by the root each was given. */
class DurableObjectFs {
  readonly roots = new Map<string, Root>();
  readonly #open = new Map<number, Open>();
  #nextFd = 3;
  readonly constants = { O_RDONLY: 0, O_RDWR: 2, O_CREAT: 64, O_EXCL: 128 };

  #locate(path: string): { root: Root; path: string } {
    const m = /^(\/do\/[^/]+)\/(.+)$/.exec(path);
    const root = m ? this.roots.get(m[1]) : undefined;
    if (!m || !root) throw enoent(path);
    return { root, path: m[2] };
  }

  #size(root: Root, path: string): number | undefined {
    let size = root.sizes.get(path);
    if (size === undefined) {
      const row = root.storage.sql.exec("SELECT size FROM _es_file_size WHERE path = ?", path).toArray()[0];
      if (row === undefined) return undefined;
      size = Number(row.size);
      root.sizes.set(path, size);
    }
    return size;
  }

  #setSize(root: Root, path: string, size: number): void {
    root.sizes.set(path, size);
    root.storage.sql.exec("INSERT OR REPLACE INTO _es_file_size (path, size) VALUES (?, ?)", path, size);
  }

  #block(root: Root, path: string, blk: number): Uint8Array | undefined {
    let cache = root.blocks.get(path);
    if (!cache) root.blocks.set(path, (cache = new Map()));
    let b = cache.get(blk);
    if (b === undefined) {
      const row = root.storage.sql.exec("SELECT data FROM _es_files WHERE path = ? AND blk = ?", path, blk).toArray()[0];
      if (row === undefined) return undefined;
      b = new Uint8Array(row.data as ArrayBuffer);
      cache.set(blk, b);
    }
    return b;
  }

  openSync(full: string, flags: number): number {
    const { root, path } = this.#locate(full);
    const exists = this.#size(root, path) !== undefined;
    if (exists && flags & this.constants.O_EXCL) throw eexist(full);
    if (!exists) {
      if (!(flags & this.constants.O_CREAT)) throw enoent(full);
      this.#setSize(root, path, 0);
    }
    const fd = this.#nextFd++;
    this.#open.set(fd, { root, path });
    return fd;
  }

  #fd(fd: number): Open {
    const f = this.#open.get(fd);
    if (!f) throw ebadf();
    return f;
  }

  readSync(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number {
    const { root, path } = this.#fd(fd);
    const size = this.#size(root, path) ?? 0;
    const end = Math.min(pos + len, size);
    let done = 0;
    for (let at = pos; at < end; ) {
      const blk = Math.floor(at / BLOCK);
      const inBlk = at - blk * BLOCK;
      const n = Math.min(BLOCK - inBlk, end - at);
      const b = this.#block(root, path, blk);
      const have = b ? Math.max(0, Math.min(n, b.length - inBlk)) : 0;
      if (have > 0) buf.set(b!.subarray(inBlk, inBlk + have), off + done);
      if (have < n) buf.fill(0, off + done + have, off + done + n);
      done += n;
      at += n;
    }
    return done;
  }

  writeSync(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number {
    const { root, path } = this.#fd(fd);
    let done = 0;
    while (done < len) {
      const at = pos + done;
      const blk = Math.floor(at / BLOCK);
      const inBlk = at - blk * BLOCK;
      const n = Math.min(BLOCK - inBlk, len - done);
      let b = this.#block(root, path, blk);
      if (!b || (b.length < inBlk + n && b.length < BLOCK)) {
        const grown = new Uint8Array(Math.max(inBlk + n, b?.length ?? 0));
        if (b) grown.set(b);
        b = grown;
      }
      b.set(buf.subarray(off + done, off + done + n), inBlk);
      root.blocks.get(path)!.set(blk, b);
      root.storage.sql.exec("INSERT OR REPLACE INTO _es_files (path, blk, data) VALUES (?, ?, ?)", path, blk, b.buffer);
      done += n;
    }
    const size = this.#size(root, path) ?? 0;
    if (pos + len > size) this.#setSize(root, path, pos + len);
    return len;
  }

  ftruncateSync(fd: number, size: number): void {
    const { root, path } = this.#fd(fd);
    const keep = Math.ceil(size / BLOCK);
    root.storage.sql.exec("DELETE FROM _es_files WHERE path = ? AND blk >= ?", path, keep);
    const cache = root.blocks.get(path);
    if (cache) for (const k of [...cache.keys()]) if (k >= keep) cache.delete(k);
    const last = keep - 1;
    const b = last >= 0 ? this.#block(root, path, last) : undefined;
    if (b && b.length > size - last * BLOCK) {
      const cut = b.slice(0, size - last * BLOCK);
      cache?.set(last, cut);
      root.storage.sql.exec("INSERT OR REPLACE INTO _es_files (path, blk, data) VALUES (?, ?, ?)", path, last, cut.buffer);
    }
    this.#setSize(root, path, size);
  }

  // Every write is already in storage (committed at the end of the current turn).
  fsyncSync(): void {}
  fdatasyncSync(): void {}

  fstatSync(fd: number): { size: number } {
    const { root, path } = this.#fd(fd);
    return { size: this.#size(root, path) ?? 0 };
  }

  closeSync(fd: number): void {
    this.#fd(fd);
    this.#open.delete(fd);
  }

  unlinkSync(full: string): void {
    const { root, path } = this.#locate(full);
    if (this.#size(root, path) === undefined) throw enoent(full);
    root.storage.sql.exec("DELETE FROM _es_files WHERE path = ?", path);
    root.storage.sql.exec("DELETE FROM _es_file_size WHERE path = ?", path);
    root.sizes.delete(path);
    root.blocks.delete(path);
  }

  existsSync(full: string): boolean {
    try {
      const { root, path } = this.#locate(full);
      return this.#size(root, path) !== undefined;
    } catch {
      return false;
    }
  }

  realpathSync(full: string): string {
    this.#locate(full);
    if (!this.existsSync(full)) throw enoent(full);
    return full;
  }

  /** Bytes the files of the object at `root` hold. */
  bytes(root: string): number {
    const r = this.roots.get(root);
    if (!r) return 0;
    const row = r.storage.sql.exec("SELECT coalesce(sum(size), 0) AS n FROM _es_file_size").toArray()[0];
    return Number(row?.n ?? 0);
  }
}

let files: DurableObjectFs | undefined;
/** This isolate's process id for the VFS's lock files: random, drawn on first use. */
let pid = 0;

/**
 * The directory (`/do/<name>`) whose files live in this Durable Object's storage. The
 * first call in an isolate gives the module this file system for `file:` URLs.
 */
export function durableObjectFiles(storage: DurableObjectSqlStorage, name: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new Error("durableObjectFiles: name must be letters, digits, _ and -");
  if (!files) {
    files = new DurableObjectFs();
    pid = crypto.getRandomValues(new Uint32Array(1))[0] || 1;
    const fs = files;
    // The object is the one owner of its storage: a lock file left by an earlier
    // instance of it (evicted, restarted) belongs to a process that is gone.
    useNodeFs({ fs, resolve: (p: string) => p, pid, alive: (p: number) => p === pid });
  }
  const root = `/do/${name}`;
  const known = files.roots.get(root);
  if (!known || known.storage !== storage) files.roots.set(root, new Root(storage));
  return root;
}

/** Bytes the files under a `durableObjectFiles` directory hold (for /metrics). */
export function durableObjectFilesBytes(root: string): number {
  return files?.bytes(root) ?? 0;
}
