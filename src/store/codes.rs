//! SQLite's result codes by name, as the official `@libsql/client` reports a local
//! database's failure: `code` is the primary code's name (`SQLITE_CONSTRAINT`, from
//! [`crate::SqlCode::from_sqlite`]), `extendedCode` the extended code's name
//! (`SQLITE_CONSTRAINT_PRIMARYKEY`) and `rawCode` its number (1555). Names from
//! <https://www.sqlite.org/rescode.html>.

/// `(extended code, name)` of every extended result code SQLite defines.
const EXTENDED: &[(i32, &str)] = &[
    (257, "SQLITE_ERROR_MISSING_COLLSEQ"),
    (513, "SQLITE_ERROR_RETRY"),
    (769, "SQLITE_ERROR_SNAPSHOT"),
    (266, "SQLITE_IOERR_READ"),
    (522, "SQLITE_IOERR_SHORT_READ"),
    (778, "SQLITE_IOERR_WRITE"),
    (1034, "SQLITE_IOERR_FSYNC"),
    (1290, "SQLITE_IOERR_DIR_FSYNC"),
    (1546, "SQLITE_IOERR_TRUNCATE"),
    (1802, "SQLITE_IOERR_FSTAT"),
    (2058, "SQLITE_IOERR_UNLOCK"),
    (2314, "SQLITE_IOERR_RDLOCK"),
    (2570, "SQLITE_IOERR_DELETE"),
    (2826, "SQLITE_IOERR_BLOCKED"),
    (3082, "SQLITE_IOERR_NOMEM"),
    (3338, "SQLITE_IOERR_ACCESS"),
    (3594, "SQLITE_IOERR_CHECKRESERVEDLOCK"),
    (3850, "SQLITE_IOERR_LOCK"),
    (4106, "SQLITE_IOERR_CLOSE"),
    (4362, "SQLITE_IOERR_DIR_CLOSE"),
    (4618, "SQLITE_IOERR_SHMOPEN"),
    (4874, "SQLITE_IOERR_SHMSIZE"),
    (5130, "SQLITE_IOERR_SHMLOCK"),
    (5386, "SQLITE_IOERR_SHMMAP"),
    (5642, "SQLITE_IOERR_SEEK"),
    (5898, "SQLITE_IOERR_DELETE_NOENT"),
    (6154, "SQLITE_IOERR_MMAP"),
    (6410, "SQLITE_IOERR_GETTEMPPATH"),
    (6666, "SQLITE_IOERR_CONVPATH"),
    (6922, "SQLITE_IOERR_VNODE"),
    (7178, "SQLITE_IOERR_AUTH"),
    (7434, "SQLITE_IOERR_BEGIN_ATOMIC"),
    (7690, "SQLITE_IOERR_COMMIT_ATOMIC"),
    (7946, "SQLITE_IOERR_ROLLBACK_ATOMIC"),
    (8202, "SQLITE_IOERR_DATA"),
    (8458, "SQLITE_IOERR_CORRUPTFS"),
    (8714, "SQLITE_IOERR_IN_PAGE"),
    (262, "SQLITE_LOCKED_SHAREDCACHE"),
    (518, "SQLITE_LOCKED_VTAB"),
    (261, "SQLITE_BUSY_RECOVERY"),
    (517, "SQLITE_BUSY_SNAPSHOT"),
    (773, "SQLITE_BUSY_TIMEOUT"),
    (270, "SQLITE_CANTOPEN_NOTEMPDIR"),
    (526, "SQLITE_CANTOPEN_ISDIR"),
    (782, "SQLITE_CANTOPEN_FULLPATH"),
    (1038, "SQLITE_CANTOPEN_CONVPATH"),
    (1294, "SQLITE_CANTOPEN_DIRTYWAL"),
    (1550, "SQLITE_CANTOPEN_SYMLINK"),
    (267, "SQLITE_CORRUPT_VTAB"),
    (523, "SQLITE_CORRUPT_SEQUENCE"),
    (779, "SQLITE_CORRUPT_INDEX"),
    (264, "SQLITE_READONLY_RECOVERY"),
    (520, "SQLITE_READONLY_CANTLOCK"),
    (776, "SQLITE_READONLY_ROLLBACK"),
    (1032, "SQLITE_READONLY_DBMOVED"),
    (1288, "SQLITE_READONLY_CANTINIT"),
    (1544, "SQLITE_READONLY_DIRECTORY"),
    (516, "SQLITE_ABORT_ROLLBACK"),
    (275, "SQLITE_CONSTRAINT_CHECK"),
    (531, "SQLITE_CONSTRAINT_COMMITHOOK"),
    (787, "SQLITE_CONSTRAINT_FOREIGNKEY"),
    (1043, "SQLITE_CONSTRAINT_FUNCTION"),
    (1299, "SQLITE_CONSTRAINT_NOTNULL"),
    (1555, "SQLITE_CONSTRAINT_PRIMARYKEY"),
    (1811, "SQLITE_CONSTRAINT_TRIGGER"),
    (2067, "SQLITE_CONSTRAINT_UNIQUE"),
    (2323, "SQLITE_CONSTRAINT_VTAB"),
    (2579, "SQLITE_CONSTRAINT_ROWID"),
    (2835, "SQLITE_CONSTRAINT_PINNED"),
    (3091, "SQLITE_CONSTRAINT_DATATYPE"),
    (283, "SQLITE_NOTICE_RECOVER_WAL"),
    (539, "SQLITE_NOTICE_RECOVER_ROLLBACK"),
    (795, "SQLITE_NOTICE_RBU"),
    (284, "SQLITE_WARNING_AUTOINDEX"),
    (279, "SQLITE_AUTH_USER"),
];

/// The name of SQLite result code `rc`, primary or extended; `None` for a code SQLite
/// does not define.
pub fn name(rc: i32) -> Option<&'static str> {
    if rc & !0xff == 0 {
        let primary = crate::error::SqlCode::from_sqlite(rc);
        return (primary != crate::error::SqlCode::Unknown).then(|| primary.as_str());
    }
    EXTENDED.iter().find(|(c, _)| *c == rc).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_primary_and_extended_codes() {
        assert_eq!(name(1), Some("SQLITE_ERROR"));
        assert_eq!(name(19), Some("SQLITE_CONSTRAINT"));
        assert_eq!(name(1555), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
        assert_eq!(name(2067), Some("SQLITE_CONSTRAINT_UNIQUE"));
        assert_eq!(name(0), None);
        assert_eq!(name(99999), None);
        // Every extended name starts with its primary code's name.
        for (rc, n) in EXTENDED {
            let primary = name(rc & 0xff).unwrap();
            assert!(n.starts_with(&format!("{primary}_")), "{n} is not a {primary}");
        }
    }
}
