//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use super::close_code::CloseCode;
use super::error::ProtocolError;
use super::text::Utf8Bytes;

/// The longest close reason: 125 bytes of control payload less the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }

    /// Parses a received close payload: empty means no status, one byte is an error, otherwise a
    /// sendable code and a UTF-8 reason.
    pub fn parse(payload: Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(ProtocolError::InvalidClosePayload),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = Utf8Bytes::try_from(payload.slice(2..))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// Encodes the payload of a close frame carrying `frame` (empty for `None`).
    pub fn encode(frame: Option<&CloseFrame>) -> Bytes {
        match frame {
            None => Bytes::new(),
            Some(frame) => {
                let reason = frame.reason.as_bytes();
                let mut out = BytesMut::with_capacity(2 + reason.len());
                out.put_u16(frame.code.0);
                out.put_slice(reason);
                out.freeze()
            }
        }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} ({})", self.code, self.reason.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_validity_matches_rfc_section_7_4() {
        let sendable: Vec<u16> = (0..=5000).filter(|&c| CloseCode(c).is_sendable()).collect();
        let mut want: Vec<u16> = vec![1000, 1001, 1002, 1003];
        want.extend(1007..=1014);
        want.extend(3000..=4999);
        assert_eq!(sendable, want);
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                CloseFrame::parse(Bytes::from(bad.to_be_bytes().to_vec())),
                Err(ProtocolError::InvalidCloseCode(bad))
            );
        }
    }

    #[test]
    fn parses_and_encodes_payloads() {
        assert_eq!(CloseFrame::parse(Bytes::new()), Ok(None));
        assert_eq!(
            CloseFrame::parse(Bytes::from_static(&[3])),
            Err(ProtocolError::InvalidClosePayload)
        );
        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "bye");
        let wire = CloseFrame::encode(Some(&frame));
        assert_eq!(&wire[..], b"\x03\xe9bye");
        assert_eq!(CloseFrame::parse(wire), Ok(Some(frame)));
        assert_eq!(
            CloseFrame::parse(Bytes::from_static(b"\x03\xe8\xff")),
            Err(ProtocolError::InvalidUtf8)
        );
    }
}
