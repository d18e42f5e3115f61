//! The errors the protocol core detects in what a peer sends.

use std::fmt;

use super::close_code::CloseCode;

/// A violation of RFC 6455 by the peer. Each one fails the connection with a close code.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame used one of the reserved opcodes 0x3–0x7 or 0xB–0xF.
    ReservedOpcode(u8),
    /// RSV bits were set that no negotiated extension defines.
    ReservedBitsSet(u8),
    /// A client sent a frame without a masking key.
    UnmaskedFrameFromClient,
    /// A server sent a masked frame.
    MaskedFrameFromServer,
    /// A control frame had FIN unset.
    FragmentedControlFrame,
    /// A control frame carried more than 125 bytes.
    ControlFrameTooLong,
    /// A 64-bit payload length had its most significant bit set.
    InvalidPayloadLength,
    /// A continuation frame arrived with no fragmented message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was still in progress.
    ExpectedContinuation,
    /// A text message or a close reason was not valid UTF-8.
    InvalidUtf8,
    /// A close frame carried a one-byte payload.
    InvalidClosePayload,
    /// A close frame carried a code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// A data frame arrived after the peer's close frame.
    DataAfterClose,
    /// RSV1 (a compressed message, RFC 7692) was set on a control frame or a continuation
    /// frame: only a message's first frame carries it.
    MisplacedCompressionBit,
    /// A compressed message's payload did not inflate (RFC 7692 names no close code
    /// for it; 1007, as for any payload that does not fit its message type, as Node's `ws` does).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code sent to the peer when this error fails the connection:
    /// 1007 for invalid UTF-8 and data that does not inflate, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "frame uses reserved opcode {op:#x}"),
            ProtocolError::ReservedBitsSet(bits) => {
                write!(
                    f,
                    "frame sets reserved bits {bits:#05b} that no extension negotiated"
                )
            }
            ProtocolError::UnmaskedFrameFromClient => f.write_str("client sent an unmasked frame"),
            ProtocolError::MaskedFrameFromServer => f.write_str("server sent a masked frame"),
            ProtocolError::FragmentedControlFrame => f.write_str("control frame is fragmented"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame payload exceeds 125 bytes")
            }
            ProtocolError::InvalidPayloadLength => {
                f.write_str("64-bit payload length has its top bit set")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is in progress")
            }
            ProtocolError::InvalidUtf8 => {
                f.write_str("invalid UTF-8 in text message or close reason")
            }
            ProtocolError::InvalidClosePayload => f.write_str("close frame payload of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            ProtocolError::DataAfterClose => f.write_str("data frame after the peer's close frame"),
            ProtocolError::MisplacedCompressionBit => {
                f.write_str("RSV1 (compressed) set on a control or continuation frame")
            }
            ProtocolError::InvalidCompressedData => {
                f.write_str("compressed message payload does not inflate")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A size limit was exceeded. Fails the connection with close code 1009.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapacityError {
    /// A frame header announced a payload larger than `max_frame_size`.
    FrameTooLarge {
        /// The announced payload length.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message grew beyond `max_message_size`.
    MessageTooLarge {
        /// The size the message would have reached.
        size: u64,
        /// The configured limit.
        max: usize,
    },
}

impl CapacityError {
    /// The close code sent to the peer: 1009 (message too big).
    pub fn close_code(&self) -> CloseCode {
        CloseCode::MESSAGE_TOO_BIG
    }
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityError::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds max_frame_size {max}")
            }
            CapacityError::MessageTooLarge { size, max } => {
                write!(
                    f,
                    "message of at least {size} bytes exceeds max_message_size {max}"
                )
            }
        }
    }
}

impl std::error::Error for CapacityError {}

/// Why the protocol core failed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// The peer exceeded a size limit.
    Capacity(CapacityError),
}

impl FailReason {
    /// The close code this failure sends.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FailReason::Protocol(e) => e.close_code(),
            FailReason::Capacity(e) => e.close_code(),
        }
    }
}

impl From<ProtocolError> for FailReason {
    fn from(e: ProtocolError) -> Self {
        FailReason::Protocol(e)
    }
}

impl From<CapacityError> for FailReason {
    fn from(e: CapacityError) -> Self {
        FailReason::Capacity(e)
    }
}

/// A call that the protocol forbids.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// Ping and pong payloads are at most 125 bytes.
    ControlPayloadTooLong(usize),
    /// A close reason is at most 123 bytes.
    CloseReasonTooLong(usize),
    /// This close code may not be sent.
    InvalidCloseCode(u16),
    /// A message is being sent in fragments; it must end before another starts.
    MessageInProgress,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::ControlPayloadTooLong(n) => {
                write!(f, "control payload of {n} bytes exceeds 125")
            }
            UsageError::CloseReasonTooLong(n) => write!(f, "close reason of {n} bytes exceeds 123"),
            UsageError::InvalidCloseCode(c) => write!(f, "close code {c} may not be sent"),
            UsageError::MessageInProgress => {
                f.write_str("another message is being sent in fragments")
            }
        }
    }
}

impl std::error::Error for UsageError {}
