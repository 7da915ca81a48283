//! The two encodings of a message: JSON in text frames, msgpack (maps with field
//! names, so the same tagged enums read the same way) in binary frames.

use serde::{de::DeserializeOwned, Serialize};

/// Which encoding a connection uses, chosen once by its WebSocket subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Text frames holding JSON ([`crate::SUBPROTOCOL_JSON`], or no subprotocol).
    Json,
    /// Binary frames holding msgpack ([`crate::SUBPROTOCOL_MSGPACK`]).
    Msgpack,
}

/// One encoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// A frame that is not a message of this protocol.
#[derive(Debug)]
pub struct DecodeError {
    /// The stable kind: `malformed` (not JSON or msgpack of this protocol's shape),
    /// `wrong_frame` (text in a msgpack connection or the reverse).
    pub kind: &'static str,
    /// What is wrong, for the error reply.
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a message for a connection using `format`.
pub fn encode<T: Serialize>(message: &T, format: Format) -> Frame {
    match format {
        // Both encoders fail only on maps with non-string keys or on serializers that
        // refuse a type, neither of which these messages have; the empty object keeps
        // a peer's reader alive if that ever changes.
        Format::Json => Frame::Text(serde_json::to_string(message).unwrap_or_else(|_| "{}".into())),
        Format::Msgpack => Frame::Binary(rmp_serde::to_vec_named(message).unwrap_or_default()),
    }
}

/// Decodes a frame received on a connection using `format`.
pub fn decode<T: DeserializeOwned>(frame: &Frame, format: Format) -> Result<T, DecodeError> {
    match (frame, format) {
        (Frame::Text(text), Format::Json) => serde_json::from_str(text).map_err(|e| DecodeError {
            kind: "malformed",
            message: format!("not a batos.v1 message: {e}"),
        }),
        (Frame::Binary(bytes), Format::Msgpack) => {
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError {
                kind: "malformed",
                message: format!("not a batos.v1 message in msgpack: {e}"),
            })
        }
        (Frame::Text(_), Format::Msgpack) => Err(DecodeError {
            kind: "wrong_frame",
            message: "a text frame on a batos.v1.msgpack connection: send msgpack in binary frames"
                .into(),
        }),
        (Frame::Binary(_), Format::Json) => Err(DecodeError {
            kind: "wrong_frame",
            message: "a binary frame on a JSON connection: send JSON in text frames, or ask for the subprotocol batos.v1.msgpack".into(),
        }),
    }
}
