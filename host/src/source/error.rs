//! What a failed session is reported as: retina's errors sorted into LVA's diagnostics
//! (`AuthenticationError`, `ProtocolError`, `NetworkError`, `MediaFormatError`), with any
//! credentials cut out of their text first.

use std::time::Duration;

use super::codec::SUPPORTED;
use super::guard::{Exceeded, Phase};
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
    /// retina held more of one answer or one video frame than it may ([`super::guard`]).
    #[error("{exceeded}; the session is ended and retried")]
    TooLarge {
        exceeded: Exceeded,
        /// The camera's stream index of the recorded video, when playing.
        video_track: Option<usize>,
    },
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

    pub(super) fn too_large(exceeded: Exceeded, video_track: Option<usize>) -> Self {
        Self::TooLarge {
            exceeded,
            video_track,
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
            Self::TooLarge {
                exceeded:
                    Exceeded {
                        phase: Phase::Answer(_),
                        ..
                    },
                ..
            } => catalog::ProtocolError(RtspError::new("RtspMessageTooLarge", self.to_string()))
                .into(),
            Self::TooLarge {
                exceeded:
                    Exceeded {
                        phase: Phase::Playing,
                        ..
                    },
                video_track,
            } => catalog::MediaFormatError {
                code: "AccessUnitTooLarge",
                media_type: Some("video".to_owned()),
                track: *video_track,
                encoding: None,
                error_message: self.to_string(),
            }
            .into(),
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

    #[test]
    fn an_answer_too_large_is_a_protocol_error_and_a_frame_too_large_a_media_format_error() {
        let answer = SourceError::too_large(
            Exceeded {
                phase: Phase::Answer("DESCRIBE"),
                held: 1_050_000,
                limit: 1_048_576,
            },
            None,
        )
        .diagnostic();
        assert_eq!(
            answer.event_type(),
            "Microsoft.Media.Graph.Diagnostics.ProtocolError"
        );
        let body = serde_json::to_value(&answer).unwrap();
        assert_eq!(body["errorCode"], "RtspMessageTooLarge");
        let message = body["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("DESCRIBE") && message.contains("1048576"),
            "{message}"
        );

        let frame = SourceError::too_large(
            Exceeded {
                phase: Phase::Playing,
                held: 17_000_000,
                limit: 16_777_216,
            },
            Some(0),
        )
        .diagnostic();
        assert_eq!(
            frame.event_type(),
            "Microsoft.Media.Graph.Diagnostics.MediaFormatError"
        );
        let body = serde_json::to_value(&frame).unwrap();
        assert_eq!(body["code"], "AccessUnitTooLarge");
        assert_eq!(body["track"], 0);
        assert!(body["errorMessage"].as_str().unwrap().contains("17000000"));
    }
}
