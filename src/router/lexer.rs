//! A small SQLite tokenizer: just enough lexing to classify statements safely.
//!
//! It is not a parser. It only has to get the *boundaries* right — where comments,
//! string literals and quoted identifiers start and end — because everything the
//! classifier decides (read or write, which tables) rests on seeing keywords only
//! where SQLite would. A keyword inside `'...'` or `/* ... */` must never count.
//!
//! Tokens are byte ranges into the input (no per-token allocation). Every boundary
//! falls on an ASCII byte or the end of input, so slicing with them is always on a
//! `char` boundary: identifiers swallow whole runs of non-ASCII bytes, as SQLite does.

use crate::{Error, Result};

/// What a token is. Punctuation the classifier cares about is kept by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare identifier or keyword (`select`, `users`, `é_tbl`).
    Word,
    /// A quoted identifier: `"x"`, `` `x` `` or `[x]`. The range includes the quotes.
    Quoted,
    /// A string literal `'...'` (range includes the quotes).
    Str,
    /// A blob literal `x'..'`.
    Blob,
    /// A numeric literal.
    Number,
    /// A bound parameter: `?`, `?1`, `:name`, `@name`, `$name`.
    Param,
    /// One punctuation or operator byte: `(`, `)`, `,`, `;`, `.`, `=`, `+`, ...
    Punct(u8),
}

/// One token: a kind and its byte range in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: u32,
    pub end: u32,
}

impl Token {
    /// The token's text. Ranges always fall on char boundaries; `get` keeps that a
    /// non-panicking guarantee even if it were ever violated.
    #[inline]
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start as usize..self.end as usize).unwrap_or("")
    }

    /// Whether this is the bare word `kw` (ASCII case-insensitive).
    #[inline]
    pub fn is_kw(&self, sql: &str, kw: &str) -> bool {
        self.kind == Kind::Word && self.text(sql).eq_ignore_ascii_case(kw)
    }

    #[inline]
    pub fn is_punct(&self, b: u8) -> bool {
        self.kind == Kind::Punct(b)
    }
}

#[inline]
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

#[inline]
fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Tokenizes `sql` into `out` (cleared first), dropping whitespace and comments.
///
/// Errors on an unterminated string, quoted identifier or block comment: a statement
/// whose extent we cannot know is never routed. Inputs over 4 GiB are rejected too
/// (token offsets are `u32`).
pub(crate) fn tokenize(sql: &str, out: &mut Vec<Token>) -> Result<()> {
    out.clear();
    let bytes = sql.as_bytes();
    if bytes.len() > u32::MAX as usize {
        return Err(Error::QueryUnparseable("SQL text longer than 4 GiB".into()));
    }
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = memchr(b'\n', bytes, i + 2).map_or(n, |p| p + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find_block_end(bytes, i + 2).ok_or_else(|| unterminated("block comment", start))?;
                continue;
            }
            b'\'' => {
                i = quoted_end(bytes, i, b'\'').ok_or_else(|| unterminated("string literal", start))?;
                Kind::Str
            }
            b'"' | b'`' => {
                i = quoted_end(bytes, i, b).ok_or_else(|| unterminated("quoted identifier", start))?;
                Kind::Quoted
            }
            b'[' => {
                i = memchr(b']', bytes, i + 1)
                    .map(|p| p + 1)
                    .ok_or_else(|| unterminated("quoted identifier", start))?;
                Kind::Quoted
            }
            b'x' | b'X' if bytes.get(i + 1) == Some(&b'\'') => {
                i = quoted_end(bytes, i + 1, b'\'').ok_or_else(|| unterminated("blob literal", start))?;
                Kind::Blob
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                Kind::Number
            }
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(bytes, i);
                Kind::Number
            }
            b'?' => {
                i += 1;
                while i < n && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Param
            }
            b':' | b'@' | b'$' if bytes.get(i + 1).is_some_and(|&c| is_ident_char(c)) => {
                i += 1;
                while i < n && (is_ident_char(bytes[i]) || bytes[i] == b':') {
                    i += 1;
                }
                Kind::Param
            }
            _ if is_ident_start(b) => {
                i += 1;
                while i < n && is_ident_char(bytes[i]) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                // Any other ASCII byte is one punctuation token. (Non-ASCII bytes are
                // identifier starts above, so `i + 1` stays on a char boundary.)
                i += 1;
                Kind::Punct(b)
            }
        };
        out.push(Token {
            kind,
            start: start as u32,
            end: i as u32,
        });
    }
    Ok(())
}

fn unterminated(what: &str, at: usize) -> Error {
    Error::QueryUnparseable(format!("unterminated {what} starting at byte {at}"))
}

#[inline]
fn memchr(needle: u8, bytes: &[u8], from: usize) -> Option<usize> {
    bytes.get(from..)?.iter().position(|&b| b == needle).map(|p| p + from)
}

/// The index just past `*/`, searching from `from`.
fn find_block_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < bytes.len() {
        if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            return Some(i + 2);
        }
        i += 1;
    }
    None
}

/// The index just past the closing `quote` of a literal opened at `open`; a doubled
/// quote is an escaped quote (`'it''s'`).
fn quoted_end(bytes: &[u8], open: usize, quote: u8) -> Option<usize> {
    let mut i = open + 1;
    loop {
        let p = memchr(quote, bytes, i)?;
        if bytes.get(p + 1) == Some(&quote) {
            i = p + 2;
        } else {
            return Some(p + 1);
        }
    }
}

fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
            // An exponent sign: `1e+5`, `2.5E-3`.
            if (b == b'e' || b == b'E') && matches!(bytes.get(i + 1), Some(b'+' | b'-')) {
                i += 1;
            }
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// The unquoted, ASCII-lowercased name an identifier token denotes (`"My""T"` →
/// `my"t`, `[x]` → `x`). SQLite folds only ASCII case, so we do too.
pub(crate) fn ident_name(tok: &Token, sql: &str) -> String {
    let text = tok.text(sql);
    let mut name = match tok.kind {
        Kind::Quoted => {
            let quote = text.as_bytes().first().copied().unwrap_or(b'"');
            let inner = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
            match quote {
                b'"' => inner.replace("\"\"", "\""),
                b'`' => inner.replace("``", "`"),
                _ => inner.to_owned(),
            }
        }
        _ => text.to_owned(),
    };
    name.make_ascii_lowercase();
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        tokenize(sql, &mut out).unwrap();
        out.iter().map(|t| (t.kind, t.text(sql).to_owned())).collect()
    }

    #[test]
    fn lexes_literals_comments_and_quotes() {
        let toks = kinds("select 'it''s', x'ab', \"a\"\"b\", [c d], `e`, 1.5e-3, ?2, :n -- c\n/* x */ ;");
        let k: Vec<Kind> = toks.iter().map(|t| t.0).collect();
        use Kind::*;
        assert_eq!(
            k,
            vec![
                Word,
                Str,
                Punct(b','),
                Blob,
                Punct(b','),
                Quoted,
                Punct(b','),
                Quoted,
                Punct(b','),
                Quoted,
                Punct(b','),
                Number,
                Punct(b','),
                Param,
                Punct(b','),
                Param,
                Punct(b';')
            ]
        );
        assert_eq!(toks[1].1, "'it''s'");
        assert_eq!(toks[11].1, "1.5e-3");
    }

    #[test]
    fn unterminated_is_an_error() {
        let mut out = Vec::new();
        for bad in [
            "select 'x",
            "select \"x",
            "select [x",
            "select `x",
            "select 1 /* x",
            "select x'ab",
        ] {
            let err = tokenize(bad, &mut out).unwrap_err();
            assert_eq!(err.code(), "QUERY_UNPARSEABLE", "{bad}");
        }
    }

    #[test]
    fn identifier_names_are_unquoted_and_lowercased() {
        let mut out = Vec::new();
        let sql = "\"My\"\"T\" [Ab] `C``d` Été";
        tokenize(sql, &mut out).unwrap();
        let names: Vec<String> = out.iter().map(|t| ident_name(t, sql)).collect();
        assert_eq!(names, vec!["my\"t", "ab", "c`d", "Été"]);
    }
}
