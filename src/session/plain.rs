//! A session body's plaintext, sealed by [`super::envelope`]: the version, the creation
//! time, the absolute and idle expiries and the owner, before the JSON data.

/// version, created, absolute, idle expiry (8 bytes each), owner length (2 bytes).
pub(super) const PREFIX: usize = 34;

/// A body's plaintext: the version, the times and the owner, then the data.
pub(super) struct Sealed<'a> {
    pub version: u64,
    pub created_ms: f64,
    pub absolute_ms: f64,
    pub expires_ms: f64,
    pub owner: &'a str,
    pub data: &'a str,
}

impl Sealed<'_> {
    /// `version | created | absolute | expires (8 bytes each, big-endian) |
    /// owner length (u16 BE) | owner | data`.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(PREFIX + self.owner.len() + self.data.len());
        p.extend_from_slice(&self.version.to_be_bytes());
        p.extend_from_slice(&self.created_ms.to_be_bytes());
        p.extend_from_slice(&self.absolute_ms.to_be_bytes());
        p.extend_from_slice(&self.expires_ms.to_be_bytes());
        // Owners are at most 255 bytes (check_owner): the length fits.
        p.extend_from_slice(&(self.owner.len() as u16).to_be_bytes());
        p.extend_from_slice(self.owner.as_bytes());
        p.extend_from_slice(self.data.as_bytes());
        p
    }
}

impl<'a> Sealed<'a> {
    /// [`Sealed::encode`] read back.
    pub fn parse(plain: &'a [u8]) -> Option<Self> {
        if plain.len() < PREFIX {
            return None;
        }
        let word = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&plain[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let owner_len = u16::from_be_bytes([plain[32], plain[33]]) as usize;
        let rest = &plain[PREFIX..];
        if owner_len > rest.len() {
            return None;
        }
        let (owner, data) = rest.split_at(owner_len);
        Some(Sealed {
            version: word(0),
            created_ms: f64::from_bits(word(8)),
            absolute_ms: f64::from_bits(word(16)),
            expires_ms: f64::from_bits(word(24)),
            owner: std::str::from_utf8(owner).ok()?,
            data: std::str::from_utf8(data).ok()?,
        })
    }
}
