//! AMQP errors as values.
//!
//! Every failure a peer can cause is an [`AmqpError`]: a reply code, RabbitMQ's
//! reply text, and whether it closes the channel or the whole connection. The
//! server turns it into `channel.close` or `connection.close` in one place; the
//! broker only ever returns these values and knows nothing about sockets.

use std::fmt;

/// How far an error reaches: one channel, or the whole connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Closes only the channel the method arrived on.
    Channel,
    /// Closes the connection with every channel on it.
    Connection,
}

/// The AMQP 0-9-1 reply codes Warren uses (spec section 1.8 and RabbitMQ's additions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ReplyCode {
    ConnectionForced = 320,
    NoRoute = 312,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    /// The symbolic name RabbitMQ puts in front of every reply text.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The scope the spec gives this code: soft errors close a channel, hard ones the connection.
    fn default_scope(self) -> Scope {
        match self {
            ReplyCode::AccessRefused
            | ReplyCode::NotFound
            | ReplyCode::ResourceLocked
            | ReplyCode::PreconditionFailed
            | ReplyCode::NoRoute => Scope::Channel,
            _ => Scope::Connection,
        }
    }
}

/// A protocol error: what went wrong, for whom, and in answer to which method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    /// Channel or connection exception.
    pub scope: Scope,
    /// The reply code sent in the close method.
    pub code: ReplyCode,
    /// The reply text, already prefixed with the code's name as RabbitMQ does.
    pub text: String,
    /// Class and method id the close blames; `None` until recorded (sent as 0/0).
    pub method: Option<(u16, u16)>,
}

impl AmqpError {
    /// An error with the code's usual scope; `detail` follows `NAME - `.
    pub fn new(code: ReplyCode, detail: impl fmt::Display) -> AmqpError {
        AmqpError {
            scope: code.default_scope(),
            code,
            text: format!("{} - {}", code.name(), detail),
            method: None,
        }
    }

    /// 404 NOT_FOUND (channel).
    pub fn not_found(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotFound, detail)
    }

    /// 403 ACCESS_REFUSED (channel).
    pub fn access_refused(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::AccessRefused, detail)
    }

    /// 405 RESOURCE_LOCKED (channel).
    pub fn resource_locked(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::ResourceLocked, detail)
    }

    /// 406 PRECONDITION_FAILED (channel).
    pub fn precondition_failed(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::PreconditionFailed, detail)
    }

    /// 503 COMMAND_INVALID (connection).
    pub fn command_invalid(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::CommandInvalid, detail)
    }

    /// 505 UNEXPECTED_FRAME (connection).
    pub fn unexpected_frame(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::UnexpectedFrame, detail)
    }

    /// 501 FRAME_ERROR (connection).
    pub fn frame_error(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::FrameError, detail)
    }

    /// 504 CHANNEL_ERROR (connection).
    pub fn channel_error(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::ChannelError, detail)
    }

    /// 530 NOT_ALLOWED (connection).
    pub fn not_allowed(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotAllowed, detail)
    }

    /// 540 NOT_IMPLEMENTED (connection).
    pub fn not_implemented(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotImplemented, detail)
    }

    /// Turns the error into a connection exception whatever its code.
    pub fn on_connection(mut self) -> AmqpError {
        self.scope = Scope::Connection;
        self
    }

    /// The reply text as a short string: past 255 bytes, RabbitMQ keeps 252 and appends "...".
    pub fn reply_text(&self) -> crate::protocol::ShortString {
        if self.text.len() <= 255 {
            return self.text.as_str().into();
        }
        let mut end = 252;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &self.text[..end]).into()
    }

    /// Records the method the error answers, unless one is already recorded.
    pub fn in_method(mut self, class_id: u16, method_id: u16) -> AmqpError {
        self.method.get_or_insert((class_id, method_id));
        self
    }

    /// Class and method id for the close method (0/0 when none was recorded).
    pub fn ids(&self) -> (u16, u16) {
        self.method.unwrap_or((0, 0))
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.code as u16)
    }
}

impl std::error::Error for AmqpError {}

/// Result of anything that can fail with an AMQP error.
pub type AmqpResult<T> = Result<T, AmqpError>;
