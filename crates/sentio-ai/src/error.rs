//! Errors of the offline side of sentio-ai (CSV scoring and the NAB runner). The live detector
//! itself cannot fail.

use std::path::PathBuf;

/// What can go wrong when scoring files offline.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The CSV input cannot be scored (no header, no timestamp, no numeric column...).
    #[error("CSV input: {0}")]
    Csv(String),
    /// A timestamp could not be parsed.
    #[error(
        "line {line}: cannot parse timestamp {value:?} (expected YYYY-MM-DD HH:MM:SS, RFC 3339, or epoch seconds/milliseconds)"
    )]
    Timestamp {
        /// 1-based line number in the input.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The NAB corpus is not where it was said to be, or is incomplete.
    #[error("NAB corpus: {0}")]
    Corpus(String),
    /// No forecast can be made (history too short, bad arguments, model failure).
    #[error("forecast: {0}")]
    Forecast(String),
    /// The external NAB scorer failed or answered something unexpected.
    #[error("NAB scorer: {0}")]
    Scorer(String),
}

impl AiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
