//! Helpers shared by the fuzz targets: reading settings from the front of the input and cutting
//! the rest into pieces, so that the fuzzer chooses the split points itself.

/// Reads fuzz input from the front: settings first, then the data under test.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    /// The next byte, or 0 once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian number (missing bytes read as 0).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A length byte `n` followed by up to `n & mask` bytes: the piece lengths for [`pieces`].
    pub fn lengths(&mut self, mask: u8) -> &'a [u8] {
        let n = usize::from(self.byte() & mask).min(self.bytes.len());
        let (lens, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        lens
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// Cuts `data` into consecutive pieces whose lengths come from `lens`.
///
/// The first pass over `lens` takes each length as it is, so empty pieces occur (a caller fed
/// nothing new); later passes cycle through `lens` with every length at least 1, until `data`
/// is used up. With no lengths at all the pieces are single bytes: byte-by-byte feeding.
/// The pieces always join up to `data`.
pub fn pieces<'a>(data: &'a [u8], lens: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut first_pass = lens.iter().copied();
    let mut i = 0usize;
    while !rest.is_empty() {
        let len = match first_pass.next() {
            Some(len) => usize::from(len),
            None if lens.is_empty() => 1,
            None => {
                i += 1;
                usize::from(lens[i % lens.len()]).max(1)
            }
        };
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    debug_assert_eq!(out.concat(), data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_up() {
        let data: Vec<u8> = (0..50).collect();
        for lens in [&[][..], &[0], &[0, 0, 3], &[7, 1], &[255]] {
            assert_eq!(pieces(&data, lens).concat(), data);
        }
        assert_eq!(pieces(&data, &[]).len(), 50);
        assert!(pieces(&[], &[1, 2]).is_empty());
    }
}
