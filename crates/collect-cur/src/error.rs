//! Why an import was refused. Every variant that comes from a row names the line (1-based, as
//! an editor counts, the header being line 1) and the column, so a user can open the file there.

use crate::format::Format;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    UnknownFormat(MissingColumns),

    /// From [`import_paths`](crate::import_paths): which file failed.
    #[error("{path}: {source}")]
    InFile {
        path: String,
        source: Box<ImportError>,
    },

    #[error("the files are of two formats ({first} and {this}): import each report on its own")]
    MixedFormats { first: Format, this: Format },

    #[error("the file is empty: no header row")]
    Empty,

    /// Parquet keeps its index at the end of the file, so it cannot be read from a pipe or
    /// from inside an archive.
    #[error(
        "this is a Parquet file inside a stream or an archive: Parquet is read from a file (its \
         index is at the end), so import the .parquet file itself"
    )]
    ParquetNeedsFile,

    /// The file starts like Parquet but cannot be read as one (truncated, corrupt, or a
    /// compression this build does not read: Snappy and gzip are read).
    #[error("{message} (nothing was imported)")]
    Parquet { message: String },

    /// Reading or decompressing failed part-way. A truncated `.gz` or `.zip` lands here: the
    /// import is refused whole, never kept in part.
    #[error(
        "reading the file failed after {bytes_read} bytes: {source} \
         (a truncated or corrupt file is refused, nothing was imported)"
    )]
    Read {
        bytes_read: u64,
        #[source]
        source: std::io::Error,
    },

    #[error("zip archive: {0}")]
    Zip(String),

    /// An export with more distinct keys than an import holds in memory keeps its sums in
    /// temporary files, and writing or reading them failed.
    #[error(
        "the import keeps its sums in temporary files in {folder} and that failed: {source} \
         (it needs about 100 bytes per distinct key there; set TMPDIR to a folder with room; \
         nothing was imported)"
    )]
    Spill {
        folder: String,
        #[source]
        source: std::io::Error,
    },

    /// Malformed CSV: a row with a different number of fields than the header, bad UTF-8.
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },

    #[error("line {line}, column {column}: `{value}` is not a decimal number")]
    BadNumber {
        line: u64,
        column: String,
        value: String,
    },

    #[error("line {line}, column {column}: `{value}` is not a date or timestamp")]
    BadDate {
        line: u64,
        column: String,
        value: String,
    },

    #[error("line {line}, column {column}: `{value}` is empty; every row needs it")]
    MissingValue {
        line: u64,
        column: String,
        value: String,
    },

    #[error("line {line}: the running sum of {column} overflows (beyond 28 significant digits)")]
    Overflow { line: u64, column: String },

    #[error(
        "line {line}: currency {found} differs from {expected}, already seen for the same \
         day, account, service, region, usage type, resource and line item type"
    )]
    MixedCurrency {
        line: u64,
        expected: String,
        found: String,
    },

    /// A sum that does not fit `Money` (+/- 9.2 billion per aggregated row).
    #[error("{what} `{value}` is too large for an amount (limit +/- 9,223,372,036)")]
    OutOfRange { what: String, value: String },
}

/// The columns each known format needs and this header lacked; the error a user sees when the
/// file is none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumns {
    pub missing: Vec<(Format, Vec<&'static str>)>,
    /// The first few columns the file does have, to show what it looks like.
    pub found: Vec<String>,
}

impl fmt::Display for MissingColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a CUR or FOCUS export: expected ")?;
        let required: Vec<String> = Format::ALL
            .iter()
            .map(|format| {
                format!(
                    "{} ({})",
                    format.required_columns().join(" and "),
                    format.label()
                )
            })
            .collect();
        write!(f, "{}", required.join(", "))?;
        write!(f, "; this file lacks ")?;
        let lacked: Vec<String> = self
            .missing
            .iter()
            .map(|(format, cols)| format!("{} for {}", cols.join(", "), format.label()))
            .collect();
        write!(f, "{}", lacked.join("; "))?;
        if !self.found.is_empty() {
            write!(f, ". Its first columns are: {}", self.found.join(", "))?;
        }
        Ok(())
    }
}

/// An exact sum rounded once to [`Money`](cloudspend_core::Money)'s nano-unit, or the error that
/// names `what` was out of range.
pub(crate) fn money(
    value: rust_decimal::Decimal,
    what: &str,
) -> Result<cloudspend_core::Money, ImportError> {
    cloudspend_core::Money::from_decimal(value).map_err(|_| ImportError::OutOfRange {
        what: what.to_string(),
        value: value.to_string(),
    })
}
