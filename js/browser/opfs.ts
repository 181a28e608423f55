/**
 * The Origin Private File System as the host file system of the wasm VFS
 * (src/wasm/hostfs.rs, src/wasm/opfs.rs), in the dedicated worker that owns a store.
 *
 * A database `file:NAME` is three OPFS files in the `edgesync/` directory: `NAME`,
 * `NAME-wal` and `NAME-journal` (SQLite runs it in WAL mode, exclusive locking, so no
 * `-shm`). Sync access handles can only be created asynchronously, so `prepare()` takes
 * all three before SQLite opens the database; SQLite's synchronous calls then go
 * straight to them. "Deleting" a file truncates it (the handle stays open: removing an
 * entry under an open handle is what fails with `NoModificationAllowedError`), and a
 * file exists when it is not empty — as wa-sqlite's OPFSCoopSyncVFS does.
 *
 * Writes reach the operating system when `write()` returns (Chromium writes through a
 * file descriptor the renderer holds), so a commit survives the tab closing or its
 * renderer crashing; `flush()` (SQLite's checkpoints) makes it survive power loss.
 */

/** SQLite's sidecar files of a database. */
const SUFFIXES = ["", "-wal", "-journal"];
/** The directory inside the OPFS root. */
const ROOT = "edgesync";

/** The parts of `FileSystemSyncAccessHandle` used here (its type is in the WebWorker lib). */
interface SyncAccessHandle {
  read(buf: Uint8Array, options: { at: number }): number;
  write(buf: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  getSize(): number;
  close(): void;
}

interface OpfsFile {
  handle: SyncAccessHandle;
  /** Whether SQLite sees the file (a truncated "deleted" file is not present). */
  present: boolean;
}

interface HostError {
  code: string;
  message: string;
}

/** The OS error name SQLite's VFS understands for a DOMException. */
function hostError(e: unknown, what: string): HostError {
  const name = (e as { name?: string })?.name;
  const message = `${what}: ${(e as Error)?.message ?? String(e)}`;
  if (name === "QuotaExceededError") return { code: "ENOSPC", message };
  if (name === "NotFoundError") return { code: "ENOENT", message };
  return { code: "EIO", message: name ? `${message} (${name})` : message };
}

/** Whether this context can keep a database in OPFS: a dedicated worker with sync access handles. */
export function opfsSupported(): boolean {
  const g = globalThis as { FileSystemSyncAccessHandle?: unknown; FileSystemFileHandle?: unknown };
  return (
    typeof g.FileSystemSyncAccessHandle === "function" &&
    typeof (g.FileSystemFileHandle as { prototype?: { createSyncAccessHandle?: unknown } })?.prototype?.createSyncAccessHandle === "function" &&
    typeof navigator !== "undefined" &&
    typeof navigator.storage?.getDirectory === "function"
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The OPFS host: the handles of the prepared databases, and the file calls on them.
 *  One per wasm instance ({@link opfsFiles}): the VFS is registered once. */
export class OpfsFiles {
  #files = new Map<string, OpfsFile>();
  #fds: (OpfsFile | undefined)[] = [];
  /** Reused options object for read/write (`at` is the only field). */
  #at = { at: 0 };

  /**
   * Takes the sync access handles of database `path` (a normalized `opfsPath`). Chromium
   * may hold a file's lock for a moment after the previous owner went away (closed or
   * crashed tab): `NoModificationAllowedError`/`InvalidStateError` are retried with a
   * short back-off for up to `waitMs`, then reported as `DATABASE_LOCKED`.
   */
  async prepare(path: string, waitMs = 10_000): Promise<void> {
    const parts = path.split("/");
    const base = parts.pop()!;
    let dir = await navigator.storage.getDirectory();
    for (const p of [ROOT, ...parts]) dir = await dir.getDirectoryHandle(p, { create: true });
    const deadline = performance.now() + waitMs;
    const taken: [string, OpfsFile][] = [];
    try {
      await Promise.all(
        SUFFIXES.map(async (suffix) => {
          const fh = await dir.getFileHandle(base + suffix, { create: true });
          const handle = await acquire(fh, deadline);
          taken.push([path + suffix, { handle, present: handle.getSize() > 0 }]);
        }),
      );
    } catch (e) {
      for (const [, f] of taken) f.handle.close();
      throw e;
    }
    for (const [p, f] of taken) this.#files.set(p, f);
  }

  /** Closes the handles of database `path` (after SQLite closed it). */
  release(path: string): void {
    for (const suffix of SUFFIXES) {
      const f = this.#files.get(path + suffix);
      if (f === undefined) continue;
      this.#files.delete(path + suffix);
      try {
        f.handle.flush();
      } catch {
        // Closing flushes too; a failure here is reported by nothing else.
      }
      f.handle.close();
    }
  }

  #fd(fd: number): OpfsFile {
    const f = this.#fds[fd];
    if (f === undefined) throw { code: "EBADF", message: `no open file ${fd}` };
    return f;
  }

  // ---- the file calls (src/wasm/hostfs.rs) ------------------------------------------

  open(path: string, mode: number): number {
    const f = this.#files.get(path);
    if (f === undefined) {
      throw { code: "ENOENT", message: `${path} is not an edgesync database file prepared in this worker` };
    }
    if (mode === 3 && f.present) throw { code: "EEXIST", message: `${path} exists` };
    if (mode <= 1 && !f.present) throw { code: "ENOENT", message: `${path} does not exist` };
    f.present = true;
    let fd = this.#fds.indexOf(undefined);
    if (fd < 0) fd = this.#fds.push(f) - 1;
    else this.#fds[fd] = f;
    return fd;
  }

  read(fd: number, buf: Uint8Array, pos: number): number {
    const f = this.#fd(fd);
    this.#at.at = pos;
    try {
      return f.handle.read(buf, this.#at);
    } catch (e) {
      throw hostError(e, "read");
    }
  }

  write(fd: number, buf: Uint8Array, pos: number): void {
    const f = this.#fd(fd);
    this.#at.at = pos;
    let n: number;
    try {
      n = f.handle.write(buf, this.#at);
    } catch (e) {
      throw hostError(e, "write");
    }
    if (n !== buf.length) throw { code: "ENOSPC", message: `write: ${n} of ${buf.length} bytes written` };
  }

  truncate(fd: number, size: number): void {
    try {
      this.#fd(fd).handle.truncate(size);
    } catch (e) {
      throw hostError(e, "truncate");
    }
  }

  sync(fd: number): void {
    try {
      this.#fd(fd).handle.flush();
    } catch (e) {
      throw hostError(e, "flush");
    }
  }

  size(fd: number): number {
    return this.#fd(fd).handle.getSize();
  }

  close(fd: number): void {
    this.#fds[fd] = undefined;
  }

  remove(path: string): void {
    const f = this.#files.get(path);
    if (f === undefined || !f.present) throw { code: "ENOENT", message: `${path} does not exist` };
    try {
      f.handle.truncate(0);
      f.handle.flush();
    } catch (e) {
      throw hostError(e, "delete");
    }
    f.present = false;
  }

  exists(path: string): boolean {
    return this.#files.get(path)?.present ?? false;
  }

  resolve(path: string): string {
    return path;
  }

  syncDir(): void {}

  pid(): number {
    return 1;
  }

  alive(): boolean {
    return false;
  }

  /** OPFS lets one handle write a file; the Web Lock picks which worker takes them. */
  exclusive(): boolean {
    return true;
  }
}

async function acquire(fh: FileSystemFileHandle, deadline: number): Promise<SyncAccessHandle> {
  let wait = 2;
  for (;;) {
    try {
      return await (fh as unknown as { createSyncAccessHandle(): Promise<SyncAccessHandle> }).createSyncAccessHandle();
    } catch (e) {
      const name = (e as { name?: string })?.name;
      const busy = name === "NoModificationAllowedError" || name === "InvalidStateError";
      if (!busy) throw Object.assign(new Error(`cannot open ${fh.name} in OPFS: ${(e as Error)?.message ?? e}`), { code: name === "QuotaExceededError" ? "STORAGE_FULL" : "INVALID_ARGUMENT", name: "EdgesyncError" });
      if (performance.now() >= deadline) {
        throw Object.assign(new Error(`database locked: ${fh.name} is held open elsewhere in this origin (not by edgesync's worker)`), {
          code: "DATABASE_LOCKED",
          name: "EdgesyncError",
        });
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 50);
    }
  }
}

/** The host of this wasm instance (every replica opened in this worker shares it). */
export const opfsFiles = new OpfsFiles();

/** Why this worker cannot share a store in OPFS, or undefined when it can. */
export async function whyNoOpfs(): Promise<string | undefined> {
  if (!opfsSupported()) return "OPFS sync access handles are not available here (an insecure context, an old browser, or not a dedicated worker)";
  if (typeof navigator.locks?.request !== "function") return "Web Locks are not available here";
  if (typeof BroadcastChannel !== "function") return "BroadcastChannel is not available here";
  try {
    await navigator.storage.getDirectory();
  } catch (e) {
    return `the browser refuses OPFS to this page: ${(e as Error)?.message ?? e}`;
  }
  return undefined;
}
