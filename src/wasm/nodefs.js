// The file calls of the host VFS (src/store/vfs/, src/wasm/hostfs.rs) on Node's `fs`,
// for wasm replicas opened as `file:…`. `raw` is what js/node.ts passes to `useNodeFs`:
// { fs, resolve, pid, alive }. Every call is synchronous: SQLite's VFS is.
// A failure throws Node's error, whose `code` (ENOENT, EEXIST, ENOSPC…) the Rust side
// reads. Buffers are views of wasm memory: nothing here calls back into wasm, so the
// memory cannot grow (and detach them) during a call.

export function nodeHost(raw) {
  const { fs, resolve } = raw;
  return {
    open(path, mode) {
      const c = fs.constants;
      const flags = [c.O_RDONLY, c.O_RDWR, c.O_RDWR | c.O_CREAT, c.O_RDWR | c.O_CREAT | c.O_EXCL][mode];
      if (flags === undefined) throw Object.assign(new Error(`bad open mode ${mode}`), { code: "EINVAL" });
      return fs.openSync(path, flags, 0o644);
    },
    read(fd, buf, pos) {
      return fs.readSync(fd, buf, 0, buf.length, pos);
    },
    write(fd, buf, pos) {
      let done = 0;
      while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, pos + done);
    },
    truncate(fd, size) {
      fs.ftruncateSync(fd, size);
    },
    sync(fd, dataOnly) {
      if (dataOnly) fs.fdatasyncSync(fd);
      else fs.fsyncSync(fd);
    },
    size(fd) {
      return fs.fstatSync(fd).size;
    },
    close(fd) {
      fs.closeSync(fd);
    },
    remove(path) {
      fs.unlinkSync(path);
    },
    exists(path) {
      return fs.existsSync(path);
    },
    /** The path with symlinks resolved — of the file if it exists, else of its
     *  directory — so every spelling of one database names the same lock file. */
    resolve(path) {
      const abs = resolve(path);
      try {
        return fs.realpathSync(abs);
      } catch {
        const slash = abs.lastIndexOf("/");
        try {
          return resolve(fs.realpathSync(abs.slice(0, slash) || "/"), abs.slice(slash + 1));
        } catch {
          return abs;
        }
      }
    },
    syncDir(path) {
      const fd = fs.openSync(path, "r");
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    pid() {
      return raw.pid;
    },
    alive(pid) {
      return raw.alive(pid);
    },
    exclusive() {
      return false;
    },
  };
}
