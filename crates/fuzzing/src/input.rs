//! The container for targets whose input has several parts: a sequence of
//! `u32 big-endian length || bytes` fields. A missing or truncated field
//! reads as what is left (possibly empty), so every byte string is a valid
//! input and the fuzzer never wastes runs on framing.

/// Reads fields off the front of a fuzz input.
pub struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// The next field.
    pub fn next_field(&mut self) -> &'a [u8] {
        if self.0.len() < 4 {
            return std::mem::take(&mut self.0);
        }
        let len = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize;
        let rest = &self.0[4..];
        let (field, tail) = rest.split_at(len.min(rest.len()));
        self.0 = tail;
        field
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The inverse of [`Fields`]: encodes `fields` as one input.
pub fn encode_fields(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_tolerate_truncation() {
        let enc = encode_fields(&[b"ab", b"", b"cde"]);
        let mut f = Fields::new(&enc);
        assert_eq!(f.next_field(), b"ab");
        assert_eq!(f.next_field(), b"");
        assert_eq!(f.next_field(), b"cde");
        assert_eq!(f.next_field(), b"");
        let mut f = Fields::new(&[0, 0, 0, 9, b'x']);
        assert_eq!(f.next_field(), b"x");
        let mut f = Fields::new(&[1, 2]);
        assert_eq!(f.next_field(), &[1, 2]);
    }
}
