//! Cost and Usage Report collection into normalised
//! [`CostRecord`](cloudspend_core::records::CostRecord)s, two ways that give the same records
//! for the same data: import of CUR and FOCUS export files, and queries of the tenant's CUR
//! table in Athena ([`athena`]), which follow the same mapping rules.
//!
//! Neither ever touches a database: storing the result (one transaction per file or window,
//! upserts on the natural key, so importing twice changes nothing) is the caller's job, as is
//! drawing the progress bar fed by [`Progress`]. The file import is pure (bytes in, records
//! out, no network); the Athena path makes only Athena calls with the `SdkConfig` it is given.
//!
//! # What is read
//! - Legacy CUR CSV (`lineItem/UnblendedCost`), CUR 2.0 CSV (`line_item_unblended_cost`, with
//!   `product` / `resource_tags` map columns), FOCUS 1.x CSV (`BilledCost`, `ChargePeriodStart`).
//!   The format comes from the header ([`detect_format`]); a header that is none of them is
//!   refused with the columns each format lacked.
//! - Plain, gzip (`.gz`) and zip (`.zip`, one CSV or CSV.gz inside), recognised by magic bytes.
//!   A truncated or corrupt archive is an error, never a partial import.
//! - [`import_path`] reads one file, [`import_reader`] any reader, [`import_paths`] the several
//!   parts of one CUR delivery summed together. Parts must be imported together: one key can
//!   have lines in two parts, and storing part 2 on its own would replace part 1's sum.
//! - Parquet (CUR 2.0 and FOCUS from Data Exports, Athena-ready legacy CUR), from a file: each
//!   row becomes the cells the CSV export has (see `parquet.rs`), so the same rules apply. Read
//!   on one thread, a row group at a time. Snappy and gzip compression.
//!
//! # How rows become records
//! Rows are streamed and summed per natural key: (usage day, account, service, region, usage
//! type, resource id, line item type). A thread holds at most `ImportOptions::spill_keys` keys:
//! past that it writes them, sorted, to a temporary file, and the files are merged as the
//! records are read ([`import_paths_streamed`]), so memory follows neither the rows nor the keys
//! (only the tagged resources, which a tag map needs). The parse uses the machine's cores
//! ([`ImportOptions`]): the file is read in blocks that end where a record ends, each thread
//! sums the blocks it is given, and the threads' sums are merged in key order; the result, and
//! the first error in the file, are those of one pass from top to bottom. Sums are exact decimals (`rust_decimal`)
//! and each aggregated row is rounded to [`Money`](cloudspend_core::Money)'s nano-unit once,
//! so totals match the file to the cent.
//!
//! | field | legacy CUR / CUR 2.0 | FOCUS |
//! | --- | --- | --- |
//! | day | UTC date of `UsageStartDate` | UTC date of `ChargePeriodStart` |
//! | account | `UsageAccountId`, else `PayerAccountId` | `SubAccountId`, else `BillingAccountId` |
//! | service | `product/ProductName` (CUR 2.0: `product['product_name']`), else `ProductCode` | `ServiceName` |
//! | region | `product/regionCode`, `product/region`, else the availability zone minus its letter | `RegionId`, else `AvailabilityZone` minus its letter |
//! | usage type | `UsageType` | `x_UsageType` (AWS extension), else empty |
//! | resource id | `ResourceId` | `ResourceId` |
//! | line item type | `LineItemType` (Usage, Tax, Credit, Refund, Fee, ...) | `ChargeCategory` (Usage, Purchase, Tax, Credit, Adjustment) |
//! | unblended | `UnblendedCost` | `BilledCost` (FOCUS has no unblended; billed is the nearest) |
//! | amortized | AWS's amortized rule, see below | `EffectiveCost`, else `BilledCost` |
//! | usage amount | `UsageAmount` summed; dropped if a key mixes `pricing/unit`s | `ConsumedQuantity`, likewise by `ConsumedUnit` |
//! | currency | `CurrencyCode`, else USD | `BillingCurrency`, else USD |
//!
//! CUR amortized cost follows AWS: `DiscountedUsage` → `reservation/EffectiveCost`;
//! `SavingsPlanCoveredUsage` → `savingsPlan/SavingsPlanEffectiveCost`; `SavingsPlanNegation`
//! and `SavingsPlanUpfrontFee` → 0; `SavingsPlanRecurringFee` → total commitment − used
//! commitment; `RIFee` → unused amortized upfront + unused recurring fee; a `Fee` carrying a
//! reservation ARN (the upfront payment) → 0; everything else, and any line whose column is
//! absent or empty, → unblended. FOCUS rows of providers other than AWS are skipped and counted
//! by provider. Tags (legacy `resourceTags/*`, CUR 2.0 `resource_tags`, FOCUS `Tags`) come back
//! beside the records, per resource id ([`ImportResult::resource_tags`]). Empty cells and FOCUS's
//! bare `NULL` are empty values; an empty cost is zero; an unreadable amount or date stops the
//! import with its line and column.
//!
//! # Layout
//! - [`format`](mod@format): the formats, header detection, where each field is read from.
//! - [`import`]: the streaming import: containers, CSV rows, parsing, progress.
//! - `blocks`: the stream cut into blocks at record ends, parsed on several threads.
//! - `aggregate`: the per-key exact sums (interned strings, so a key is a few integers), and
//!   the merge of several threads' sums into records.
//! - [`error`]: why an import was refused, with line and column.
//! - [`athena`]: the Athena collector: schema detection from `information_schema`, the
//!   aggregate SQL built from the columns the table has ([`athena::sql`]), query execution
//!   with polling, timeout and paging.

mod aggregate;
pub mod athena;
mod blocks;
pub mod error;
pub mod format;
pub mod import;
mod parquet;

pub use athena::{AthenaError, AthenaLocation, AthenaResult, QueryOptions, query_cur};
pub use error::{ImportError, MissingColumns};
pub use format::{Format, detect_format};
pub use import::{
    CostRecords, ImportOptions, ImportResult, PROGRESS_EVERY_ROWS, Progress, StreamedImport,
    import_path, import_paths, import_paths_streamed, import_paths_with, import_reader,
    import_reader_with,
};
