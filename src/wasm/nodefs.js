// The file calls of the host VFS (src/store/vfs/) on Node's `fs`, for wasm replicas
// opened as `file:…`. `host` is what js/node.ts passes to `useNodeFs`:
// { fs, resolve, pid, alive }. Every call is synchronous: SQLite's VFS is.
// A failure throws Node's error, whose `code` (ENOENT, EEXIST, ENOSPC…) the Rust side
// reads. Buffers are views of wasm memory: nothing here calls back into wasm, so the
// memory cannot grow (and detach them) during a call.


export function fsOpen(host, path, mode) {
  const c = host.fs.constants;
  const flags = [c.O_RDONLY, c.O_RDWR, c.O_RDWR | c.O_CREAT, c.O_RDWR | c.O_CREAT | c.O_EXCL][mode];
  if (flags === undefined) throw Object.assign(new Error(`bad open mode ${mode}`), { code: "EINVAL" });
  return host.fs.openSync(path, flags, 0o644);
}

export function fsRead(host, fd, buf, pos) {
  return host.fs.readSync(fd, buf, 0, buf.length, pos);
}

export function fsWrite(host, fd, buf, pos) {
  let done = 0;
  while (done < buf.length) done += host.fs.writeSync(fd, buf, done, buf.length - done, pos + done);
}

export function fsTruncate(host, fd, size) {
  host.fs.ftruncateSync(fd, size);
}

export function fsSync(host, fd, dataOnly) {
  if (dataOnly) host.fs.fdatasyncSync(fd);
  else host.fs.fsyncSync(fd);
}

export function fsSize(host, fd) {
  return host.fs.fstatSync(fd).size;
}

export function fsClose(host, fd) {
  host.fs.closeSync(fd);
}

export function fsRemove(host, path) {
  host.fs.unlinkSync(path);
}

export function fsExists(host, path) {
  return host.fs.existsSync(path);
}

/** The path with symlinks resolved — of the file if it exists, else of its directory —
 *  so every spelling of one database names the same lock file. */
export function fsResolve(host, path) {
  const abs = host.resolve(path);
  try {
    return host.fs.realpathSync(abs);
  } catch {
    const slash = abs.lastIndexOf("/");
    try {
      return host.resolve(host.fs.realpathSync(abs.slice(0, slash) || "/"), abs.slice(slash + 1));
    } catch {
      return abs;
    }
  }
}

export function fsSyncDir(host, path) {
  const fd = host.fs.openSync(path, "r");
  try {
    host.fs.fsyncSync(fd);
  } finally {
    host.fs.closeSync(fd);
  }
}

export function procId(host) {
  return host.pid;
}

export function procAlive(host, pid) {
  return host.alive(pid);
}
