//! The CLI's error: an engine error code plus one line of text. The
//! process exit code is `10 + code` (see docs/CLI.md).

use ordq_core::ErrorCode;
use std::fmt;

/// Offset added to an engine error code to form the exit code, keeping
/// clear of 1 (generic failure) and 2 (usage error, from clap).
pub const EXIT_BASE: i32 = 10;

/// A failed command.
#[derive(Debug)]
pub struct CliError {
    /// Engine error code the failure maps to.
    pub code: ErrorCode,
    /// One-line description.
    pub message: String,
    /// An exit code of the command's own instead of `10 + code`.
    pub exit: Option<i32>,
}

impl CliError {
    /// An error with the given code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            exit: None,
        }
    }

    /// A failure with an exit code of the command's own (`ordq verify`).
    pub fn with_exit(exit: i32, message: impl Into<String>) -> Self {
        CliError {
            exit: Some(exit),
            ..Self::new(ErrorCode::Corrupt, message)
        }
    }

    /// `InvalidArgument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `Unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// `Io`.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Io, message)
    }

    /// The process exit code: `10 + engine code`.
    pub fn exit_code(&self) -> i32 {
        self.exit.unwrap_or(EXIT_BASE + self.code.as_i32())
    }
}

impl From<ordq_core::Error> for CliError {
    fn from(e: ordq_core::Error) -> Self {
        let hint = match e.code() {
            ErrorCode::AlreadyOpen => {
                " (if `ordq serve` holds it, pass the broker's address instead: \
                 --db unix:///PATH/ordq.sock or tcp://HOST:PORT)"
            }
            _ => "",
        };
        CliError::new(e.code(), format!("{e}{hint}"))
    }
}

impl CliError {
    /// The error as one JSON object (what `--json` prints on stderr):
    /// `{"error": {"code", "name", "message", "exit"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": self.code.as_i32(),
            "name": self.code.name(),
            "message": self.message,
            "exit": self.exit_code(),
        }})
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep the message on one line whatever the engine put in it.
        let one_line = self.message.replace(['\n', '\r'], " ");
        write!(f, "{one_line} [{}]", self.code.name())
    }
}
