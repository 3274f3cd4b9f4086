//! What a failed session is reported as: retina's errors sorted into LVA's diagnostics
//! (`AuthenticationError`, `ProtocolError`, `NetworkError`, `MediaFormatError`), with any
//! credentials cut out of their text first.

use std::time::Duration;

use super::codec::SUPPORTED;
use crate::events::Body;
use crate::events::catalog::{self, RtspError};

/// Why one session attempt failed before or while playing.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("RTSP {method} answered {status}: {message}")]
    Status {
        method: &'static str,
        status: u16,
        message: String,
    },
    #[error("network: {0}")]
    Network(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("nothing recordable: the camera offers {0}; supported: {SUPPORTED}")]
    NoVideo(String),
    #[error("timed out after {0:?} during {1}")]
    Timeout(Duration, &'static str),
}

impl SourceError {
    pub(super) fn from_retina(method: &'static str, e: retina::Error) -> Self {
        // retina quotes the URL it was given in some errors; the text goes into events and
        // logs, so credentials in it are cut out here, before anything sees it.
        let message = crate::topology::scrub_userinfo(&e.to_string());
        if let Some(status) = e.status_code() {
            return Self::Status {
                method,
                status,
                message: first_line(&message),
            };
        }
        // retina's error is opaque; its messages for socket failures have stable prefixes.
        if [
            "Unable to connect",
            "Error reading",
            "Error writing",
            "Timeout",
        ]
        .iter()
        .any(|p| message.starts_with(p))
        {
            Self::Network(first_line(&message))
        } else {
            Self::Protocol(first_line(&message))
        }
    }

    /// The LVA diagnostic this failure is reported as.
    pub(super) fn diagnostic(&self) -> Body {
        match self {
            Self::Status {
                status: status @ (401 | 403),
                message,
                ..
            } => catalog::AuthenticationError(RtspError::new(status.to_string(), message)).into(),
            Self::Status {
                status, message, ..
            } => catalog::ProtocolError(RtspError::new(status.to_string(), message)).into(),
            Self::Network(m) => catalog::NetworkError {
                error_code: "ConnectionFailed",
                error_message: m.clone(),
            }
            .into(),
            Self::Timeout(..) => catalog::NetworkError {
                error_code: "Timeout",
                error_message: self.to_string(),
            }
            .into(),
            Self::Protocol(m) => {
                catalog::ProtocolError(RtspError::new("InvalidResponse", m.clone())).into()
            }
            Self::NoVideo(_) => catalog::MediaFormatError {
                code: "UnsupportedCodec",
                media_type: None,
                track: None,
                encoding: None,
                error_message: self.to_string(),
            }
            .into(),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_401_is_an_authentication_error_with_the_code() {
        let e = SourceError::Status {
            method: "DESCRIBE",
            status: 401,
            message: "Unauthorized".into(),
        };
        let body = e.diagnostic();
        assert_eq!(
            body.event_type(),
            "Microsoft.Media.Graph.Diagnostics.AuthenticationError"
        );
        assert_eq!(serde_json::to_value(&body).unwrap()["errorCode"], "401");
    }
}
