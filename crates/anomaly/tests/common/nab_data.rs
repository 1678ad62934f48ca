//! Loads the NAB AWS CloudWatch files, their labelled windows and NAB's stored detector results
//! from the repository's `tests/data/nab-aws` (see its PROVENANCE.txt). Shared by the `nab_eval`
//! example and the NAB integration test; test-side I/O, so the library stays free of it.

#![allow(dead_code)] // each includer uses a different part

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use cloudspend_anomaly::nab::ScoredFile;

pub struct NabFile {
    pub name: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    pub windows: Vec<(i64, i64)>,
    /// NAB's own ground-truth column from its stored results (1 inside a window), when present:
    /// a cross-check that our windows cover the same rows.
    pub nab_labels: Option<Vec<u8>>,
}

/// `NAB_AWS_DIR` when set, else the copy in the repository's `tests/data/nab-aws`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("NAB_AWS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/nab-aws"))
}

pub fn parse_ts(s: &str) -> i64 {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("timestamp {s}: {e}"))
        .and_utc()
        .timestamp()
}

/// The rows of a CSV file after its header; `.csv.gz` files (the stored results) are unzipped.
fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text
    } else {
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|f| f.trim().to_owned()).collect())
        .collect()
}

/// The 17 realAWSCloudwatch files, sorted by name. Panics with a clear message when the data is
/// missing: an evaluation that silently scores nothing is worse than a failure.
pub fn load(dir: &Path) -> Vec<NabFile> {
    let windows_path = dir.join("labels/combined_windows.json");
    let text = fs::read_to_string(&windows_path).unwrap_or_else(|e| {
        panic!(
            "NAB data not found at {} ({e}); the repository ships it in tests/data/nab-aws, \
             or set NAB_AWS_DIR",
            windows_path.display()
        )
    });
    let windows: serde_json::Value = serde_json::from_str(&text).expect("combined_windows.json");
    let mut names: Vec<String> = fs::read_dir(dir.join("data"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("data").display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let key = format!("realAWSCloudwatch/{name}");
            let mut file = read_file(&dir.join("data").join(&name), &key, &windows);
            // Every stored result file carries NAB's label column; numenta's is read.
            file.nab_labels = stored_column(dir, "numenta", &name, 3)
                .map(|c| c.iter().map(|&v| u8::from(v > 0.5)).collect());
            file
        })
        .collect()
}

/// Column `column` of NAB's stored result file for `detector` (2 = anomaly_score, 3 = label).
pub fn stored_column(dir: &Path, detector: &str, file: &str, column: usize) -> Option<Vec<f64>> {
    // Stored gzipped in the repository; a plain NAB checkout (NAB_AWS_DIR) has them as .csv.
    let folder = dir.join("results").join(detector);
    let path = [
        format!("{detector}_{file}.gz"),
        format!("{detector}_{file}"),
    ]
    .into_iter()
    .map(|name| folder.join(name))
    .find(|path| path.exists())?;
    Some(
        read_rows(&path)
            .iter()
            .map(|r| r.get(column).and_then(|v| v.parse().ok()).unwrap_or(0.0))
            .collect(),
    )
}

/// The detectors with stored results for every file, sorted by name.
pub fn published_detectors(dir: &Path, files: &[NabFile]) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir.join("results"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.retain(|det| {
        files
            .iter()
            .all(|f| stored_column(dir, det, &f.name, 2).is_some_and(|s| s.len() == f.values.len()))
    });
    out.sort();
    out
}

pub fn corpus<'a>(files: &'a [NabFile], scores: &'a [Vec<f64>]) -> Vec<ScoredFile<'a>> {
    files
        .iter()
        .zip(scores)
        .map(|(f, s)| ScoredFile {
            timestamps: &f.timestamps,
            scores: s,
            windows: &f.windows,
        })
        .collect()
}

/// The repository's copy of NAB's other folders (see its PROVENANCE.txt).
pub fn more_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/nab-more")
}

/// The files of one folder of `tests/data/nab-more`, sorted by name.
pub fn load_more(folder: &str, windows: &serde_json::Value) -> Vec<NabFile> {
    let dir = more_dir().join("data").join(folder);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv.gz"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|gz| {
            let name = gz.trim_end_matches(".gz");
            read_file(&dir.join(&gz), &format!("{folder}/{name}"), windows)
        })
        .collect()
}

/// One NAB series (`timestamp,value` rows, plain or gzipped) with its scoring windows from
/// `combined_windows.json` under `key` (`folder/file.csv`), named by the file; no stored labels.
fn read_file(path: &Path, key: &str, windows: &serde_json::Value) -> NabFile {
    let rows = read_rows(path);
    let windows = windows[key]
        .as_array()
        .unwrap_or_else(|| panic!("no windows for {key}"))
        .iter()
        .map(|p| {
            (
                parse_ts(p[0].as_str().unwrap()),
                parse_ts(p[1].as_str().unwrap()),
            )
        })
        .collect();
    NabFile {
        name: key.rsplit('/').next().expect("a file name").to_owned(),
        timestamps: rows.iter().map(|r| parse_ts(&r[0])).collect(),
        values: rows
            .iter()
            .map(|r| r[1].parse().unwrap_or(f64::NAN))
            .collect(),
        windows,
        nab_labels: None,
    }
}
