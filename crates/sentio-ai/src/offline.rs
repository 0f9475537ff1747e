//! Offline use of the live detector: scoring a CSV file, and running the Numenta Anomaly
//! Benchmark (NAB). This is the only module of sentio-ai that touches the filesystem or starts a
//! process; every point still goes through exactly the live [`SeriesDetector::update`].

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::detector::{DetectorConfig, SeriesDetector};
use crate::device_model::{DeviceModel, DeviceModelConfig};
use crate::error::AiError;

/// Parses a timestamp into milliseconds since the Unix epoch (UTC).
///
/// Accepted: `YYYY-MM-DD HH:MM[:SS[.fff]]` (or with `/` in the date), `YYYY-MM-DD` and RFC 3339
/// (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`; no offset means UTC), and epoch numbers: values of
/// magnitude at least 1e11 are milliseconds, smaller ones seconds (1e11 s is the year 5138).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim().trim_matches('"').trim();
    if t.is_empty() {
        return None;
    }
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !body.contains(['-', ':', 'T', ' '])
        && let Ok(n) = t.parse::<f64>()
        && n.is_finite()
    {
        return Some(if n.abs() >= 1e11 {
            n.round() as i64
        } else {
            (n * 1000.0).round() as i64
        });
    }
    parse_datetime(t)
}

fn digits(s: &[u8], from: usize, len: usize) -> Option<i64> {
    let part = s.get(from..from + len)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        part.iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')),
    )
}

fn parse_datetime(t: &str) -> Option<i64> {
    let s = t.as_bytes();
    let year = digits(s, 0, 4)?;
    let sep = s.get(4).copied();
    if !matches!(sep, Some(b'-' | b'/')) || s.get(7).copied() != sep {
        return None;
    }
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if s.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(s.get(10), Some(b' ' | b'T' | b't')) {
        return None;
    }
    let hour = digits(s, 11, 2)?;
    if s.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(s, 14, 2)?;
    let (second, mut i) = if s.get(16) == Some(&b':') {
        (digits(s, 17, 2)?, 19)
    } else {
        (0, 16)
    };
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut millis = 0i64;
    if s.get(i) == Some(&b'.') || s.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &t[start..i.min(start + 3)];
        let scale = 10i64.pow(3 - frac.len() as u32);
        millis = frac.parse::<i64>().ok()? * scale;
    }
    let mut offset_min = 0i64;
    match s.get(i) {
        None => {}
        Some(b'Z' | b'z') if i + 1 == s.len() => {}
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(s, i + 1, 2)?;
            let rest = i + 3;
            let om = match s.get(rest) {
                None => 0,
                Some(b':') => digits(s, rest + 1, 2)?,
                Some(_) => digits(s, rest, 2)?,
            };
            offset_min = (oh * 60 + om) * if sign == b'-' { -1 } else { 1 };
        }
        _ => return None,
    }
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What [`score_csv`] did, for the caller to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvReport {
    /// Data rows read (and written).
    pub rows: usize,
    /// The metric columns that were scored.
    pub metrics: Vec<String>,
    /// Rows with at least one alert.
    pub alert_rows: usize,
    /// Problems that did not stop the scoring: unusable columns, unparsable cells.
    pub warnings: Vec<String>,
    /// Time spent inside [`SeriesDetector::update`].
    pub detector_time: Duration,
    /// Number of [`SeriesDetector::update`] calls.
    pub points: usize,
    /// Saved size (JSON) of the device model at the end, when the file was one device.
    pub model_bytes: usize,
}

/// Splits one CSV line on `delim`, outside double quotes; cells are trimmed and unquoted.
fn split_line(line: &str, delim: char) -> Vec<&str> {
    let mut cells = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, ch) in line.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == delim && !quoted {
            cells.push(&line[start..i]);
            start = i + ch.len_utf8();
        }
    }
    cells.push(&line[start..]);
    cells
        .into_iter()
        .map(|c| c.trim().trim_matches('"').trim())
        .collect()
}

fn parse_number(cell: &str, decimal_comma: bool) -> Option<f64> {
    let v = if decimal_comma && cell.contains(',') {
        cell.replace(',', ".").parse::<f64>().ok()
    } else {
        cell.parse::<f64>().ok()
    };
    v.filter(|x| x.is_finite())
}

/// A CSV of one device, read: header names, usable metric columns, parsed rows.
struct Table {
    metrics: Vec<String>,
    /// Per row: the timestamp text, its time, and each usable column's value.
    rows: Vec<(String, i64, Vec<Option<f64>>)>,
    /// Empty or unparsable cells per usable column.
    skipped: Vec<usize>,
    warnings: Vec<String>,
}

fn read_table<R: BufRead>(input: R) -> Result<Table, AiError> {
    let io = |e| AiError::io("<csv>", e);
    let mut lines = Vec::new();
    for line in input.lines() {
        let line = line.map_err(io)?;
        let line = line.trim_end_matches('\r').trim_start_matches('\u{feff}');
        if !line.trim().is_empty() {
            lines.push(line.to_string());
        }
    }
    let Some(header) = lines.first() else {
        return Err(AiError::Csv("empty input".into()));
    };
    let delim = if header.contains(';') && !header.contains(',') {
        ';'
    } else {
        ','
    };
    let decimal_comma = delim == ';';
    let names: Vec<String> = split_line(header, delim)
        .iter()
        .map(|s| s.to_string())
        .collect();
    if names.len() < 2 {
        return Err(AiError::Csv(format!(
            "header {header:?} has no metric column (expected timestamp then numeric columns, separated by ',' or ';')"
        )));
    }
    let cells: Vec<Vec<&str>> = lines[1..].iter().map(|l| split_line(l, delim)).collect();
    let mut warnings = Vec::new();
    let mut metrics = Vec::new();
    // A column is usable when at least one of its cells is a number.
    let mut usable = Vec::new();
    for (c, name) in names.iter().enumerate().skip(1) {
        let numeric = cells
            .iter()
            .filter(|r| {
                r.get(c)
                    .is_some_and(|v| parse_number(v, decimal_comma).is_some())
            })
            .count();
        if numeric == 0 {
            warnings.push(format!(
                "column {c} ({name:?}) has no numeric value: not scored"
            ));
        } else {
            usable.push(c);
            metrics.push(name.clone());
        }
    }
    if usable.is_empty() {
        return Err(AiError::Csv(format!(
            "no numeric metric column among {:?}",
            &names[1..]
        )));
    }
    let mut skipped = vec![0usize; usable.len()];
    let mut rows = Vec::with_capacity(cells.len());
    for (r, row) in cells.iter().enumerate() {
        let ts_text = row.first().copied().unwrap_or("");
        let ts = parse_timestamp(ts_text).ok_or_else(|| AiError::Timestamp {
            line: r + 2,
            value: ts_text.to_string(),
        })?;
        let values = usable
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                let v = row.get(c).and_then(|v| parse_number(v, decimal_comma));
                skipped[k] += usize::from(v.is_none());
                v
            })
            .collect();
        rows.push((ts_text.to_string(), ts, values));
    }
    Ok(Table {
        metrics,
        rows,
        skipped,
        warnings,
    })
}

/// Scores a CSV of one device: the first column is a timestamp (see [`parse_timestamp`]), every
/// other column a numeric metric. `,` or `;` separated (with `;`, a decimal comma is accepted).
/// Writes `timestamp,anomaly_score,alert` (the input timestamp text, the score, 0/1), one row per
/// input row. A column with no numeric cell is not scored and is named in a warning; an empty
/// or unparsable cell in a scored column is skipped (that metric is not updated on that row)
/// and counted in a warning.
///
/// One metric: its live [`SeriesDetector`] scores every point. Several metrics: they are one
/// device, streamed row by row through the live [`DeviceModel`]; `alert` is 1 on every row while
/// the model holds an alarm open and the score is the row's statistic over its limit.
pub fn score_csv<R: BufRead, W: Write>(
    input: R,
    output: W,
    config: &DetectorConfig,
) -> Result<CsvReport, AiError> {
    score_csv_with(None, input, output, config, &DeviceModelConfig::default())
}

/// [`score_csv`], first streaming `history` (a CSV of normal operation with the same columns,
/// as the device's earlier days would be) through the detectors without writing it.
pub fn score_csv_with<R: BufRead, W: Write>(
    history: Option<&str>,
    input: R,
    mut output: W,
    config: &DetectorConfig,
    device: &DeviceModelConfig,
) -> Result<CsvReport, AiError> {
    let io = |e| AiError::io("<csv>", e);
    let table = read_table(input)?;
    let history = history.map(|h| read_table(h.as_bytes())).transpose()?;
    let mut report = CsvReport {
        metrics: table.metrics.clone(),
        warnings: table.warnings.clone(),
        ..CsvReport::default()
    };
    let mut out = String::with_capacity(64 * table.rows.len() + 32);
    out.push_str("timestamp,anomaly_score,alert\n");
    if table.metrics.len() >= 2 {
        let mut model = DeviceModel::new();
        if let Some(h) = &history {
            for (_, ts, values) in &h.rows {
                model.update_row(device, *ts, row_readings(&h.metrics, values));
            }
        }
        for (ts_text, ts, values) in &table.rows {
            let start = Instant::now();
            let verdict = model.update_row(device, *ts, row_readings(&table.metrics, values));
            report.detector_time += start.elapsed();
            report.points += values.iter().flatten().count();
            let (score, alert) = (verdict.score, verdict.alert);
            report.alert_rows += usize::from(alert);
            let _ = writeln!(out, "{ts_text},{score:.6},{}", u8::from(alert));
        }
        report.model_bytes = serde_json::to_string(&model).map_or(0, |j| j.len());
    } else {
        let mut detector = SeriesDetector::new(config);
        if let Some(h) = &history {
            for (_, ts, values) in &h.rows {
                if let Some(v) = values.first().copied().flatten() {
                    detector.update(*ts, v);
                }
            }
        }
        for (ts_text, ts, values) in &table.rows {
            let mut score = 0.0;
            let mut alert = false;
            if let Some(v) = values.first().copied().flatten() {
                let start = Instant::now();
                let s = detector.update(*ts, v);
                report.detector_time += start.elapsed();
                report.points += 1;
                score = s.score;
                alert = s.alert;
            }
            report.alert_rows += usize::from(alert);
            let _ = writeln!(out, "{ts_text},{score:.6},{}", u8::from(alert));
        }
    }
    for (k, n) in table.skipped.iter().enumerate() {
        if *n > 0 {
            report.warnings.push(format!(
                "column {:?}: {n} empty or non-numeric cell(s) skipped",
                report.metrics[k]
            ));
        }
    }
    report.rows = table.rows.len();
    output.write_all(out.as_bytes()).map_err(io)?;
    output.flush().map_err(io)?;
    Ok(report)
}

fn row_readings<'a>(
    metrics: &'a [String],
    values: &'a [Option<f64>],
) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    metrics
        .iter()
        .zip(values)
        .filter_map(|(m, v)| v.map(|v| (m.as_str(), v)))
}

/// [`score_csv`] from one file into another.
pub fn score_csv_file(
    input: &Path,
    output: &Path,
    config: &DetectorConfig,
) -> Result<CsvReport, AiError> {
    score_csv_file_with(None, input, output, config, &DeviceModelConfig::default())
}

/// [`score_csv_with`] from files: `history` (normal operation) is streamed first.
pub fn score_csv_file_with(
    history: Option<&Path>,
    input: &Path,
    output: &Path,
    config: &DetectorConfig,
    device: &DeviceModelConfig,
) -> Result<CsvReport, AiError> {
    let text = std::fs::read_to_string(input).map_err(|e| AiError::io(input, e))?;
    let history = history
        .map(|h| std::fs::read_to_string(h).map_err(|e| AiError::io(h, e)))
        .transpose()?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AiError::io(dir, e))?;
    }
    let out = std::fs::File::create(output).map_err(|e| AiError::io(output, e))?;
    score_csv_with(
        history.as_deref(),
        text.as_bytes(),
        std::io::BufWriter::new(out),
        config,
        device,
    )
    .map_err(|e| match e {
        AiError::Io { source, .. } => AiError::io(output, source),
        other => other,
    })
}

/// Where the NAB runner finds things and writes its results.
#[derive(Debug, Clone)]
pub struct NabOptions {
    /// The NAB corpus root (holding `data/`, `labels/`, `config/`).
    pub corpus: PathBuf,
    /// Results directory (`<out>/<category>/<file>.csv` is written).
    pub out: PathBuf,
    /// NAB scorer script; `None` means `<corpus>/../../tools/nab_score.py`.
    pub scorer: Option<PathBuf>,
    /// Python interpreter.
    pub python: String,
    /// The detector parameters (one set for the whole corpus).
    pub config: DetectorConfig,
}

impl NabOptions {
    /// Options with the default scorer location, `python3` and the default detector.
    pub fn new(corpus: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            corpus: corpus.into(),
            out: out.into(),
            scorer: None,
            python: "python3".into(),
            config: DetectorConfig::default(),
        }
    }
}

/// The outcome of a NAB run.
#[derive(Debug, Clone, PartialEq)]
pub struct NabReport {
    /// Normalised score, standard profile.
    pub standard: f64,
    /// Normalised score, reward-low-FP profile.
    pub reward_low_fp: f64,
    /// Normalised score, reward-low-FN profile.
    pub reward_low_fn: f64,
    /// Data files scored.
    pub files: usize,
    /// Points scored.
    pub points: usize,
    /// Mean time of one [`SeriesDetector::update`] call, nanoseconds.
    pub ns_per_point: f64,
    /// Largest per-series detector memory seen at the end of a file (`size_of` + heap), bytes.
    pub max_memory_bytes: usize,
    /// Largest serialized (JSON) detector state seen at the end of a file, bytes.
    pub max_serialized_bytes: usize,
    /// The scorer's full JSON answer.
    pub scorer_json: String,
}

/// Runs the detector over every `data/<category>/<file>.csv` of the NAB corpus (one fresh
/// [`SeriesDetector`] per file, one parameter set), writes `<out>/<category>/<file>.csv`, then
/// runs NAB's scorer on them (`python3 <scorer> --results <out> ...`) and returns its three
/// normalised scores with the cost figures.
pub fn run_nab(opts: &NabOptions) -> Result<NabReport, AiError> {
    let data = opts.corpus.join("data");
    let windows = opts.corpus.join("labels").join("combined_windows.json");
    let profiles = opts.corpus.join("config").join("profiles.json");
    for p in [&data, &windows, &profiles] {
        if !p.exists() {
            return Err(AiError::Corpus(format!("{} not found", p.display())));
        }
    }
    let scorer = opts.scorer.clone().unwrap_or_else(|| {
        opts.corpus
            .join("..")
            .join("..")
            .join("tools")
            .join("nab_score.py")
    });
    if !scorer.exists() {
        return Err(AiError::Scorer(format!("{} not found", scorer.display())));
    }
    let mut files = Vec::new();
    let mut cats: Vec<_> = std::fs::read_dir(&data)
        .map_err(|e| AiError::io(&data, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cats.sort();
    for cat in cats {
        let mut in_cat: Vec<_> = std::fs::read_dir(&cat)
            .map_err(|e| AiError::io(&cat, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        in_cat.sort();
        files.extend(in_cat);
    }
    if files.is_empty() {
        return Err(AiError::Corpus(format!("no CSV under {}", data.display())));
    }
    let mut points = 0usize;
    let mut time = Duration::ZERO;
    let mut max_mem = 0usize;
    let mut max_ser = 0usize;
    for f in &files {
        let rel = f.strip_prefix(&data).unwrap_or(f);
        let (scored, mem, ser) = score_nab_file(f, &opts.out.join(rel), &opts.config)?;
        points += scored.points;
        time += scored.detector_time;
        max_mem = max_mem.max(mem);
        max_ser = max_ser.max(ser);
    }
    let output = Command::new(&opts.python)
        .arg(&scorer)
        .arg("--results")
        .arg(&opts.out)
        .arg("--windows")
        .arg(&windows)
        .arg("--profiles")
        .arg(&profiles)
        .arg("--data")
        .arg(&data)
        .output()
        .map_err(|e| AiError::Scorer(format!("cannot start {}: {e}", opts.python)))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(AiError::Scorer(format!(
            "exit status {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let json: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| AiError::Scorer(format!("unreadable JSON answer: {e}")))?;
    let get = |profile: &str| {
        json["profiles"][profile]["normalized_score"]
            .as_f64()
            .ok_or_else(|| AiError::Scorer(format!("no normalized_score for profile {profile}")))
    };
    Ok(NabReport {
        standard: get("standard")?,
        reward_low_fp: get("reward_low_FP_rate")?,
        reward_low_fn: get("reward_low_FN_rate")?,
        files: files.len(),
        points,
        ns_per_point: time.as_nanos() as f64 / points.max(1) as f64,
        max_memory_bytes: max_mem,
        max_serialized_bytes: max_ser,
        scorer_json: stdout,
    })
}

/// Scores one NAB file (single `value` column) and reports the detector's final memory.
fn score_nab_file(
    input: &Path,
    output: &Path,
    config: &DetectorConfig,
) -> Result<(CsvReport, usize, usize), AiError> {
    let report = score_csv_file(input, output, config)?;
    if report.metrics.len() != 1 || !report.warnings.is_empty() {
        return Err(AiError::Corpus(format!(
            "{}: expected one clean numeric column, got {:?} ({})",
            input.display(),
            report.metrics,
            report.warnings.join("; ")
        )));
    }
    // Re-run to measure the state this series ends with (cheap: < 1 ms per file).
    let text = std::fs::read_to_string(input).map_err(|e| AiError::io(input, e))?;
    let mut d = SeriesDetector::new(config);
    for line in text.lines().skip(1) {
        let mut it = line.split(',');
        if let (Some(ts), Some(v)) = (it.next(), it.next())
            && let (Some(ts), Ok(v)) = (parse_timestamp(ts), v.trim().parse::<f64>())
        {
            d.update(ts, v);
        }
    }
    let ser = serde_json::to_vec(&d).map(|v| v.len()).unwrap_or(0);
    Ok((report, d.memory_bytes(), ser))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ts(input: &str, expected: Option<i64>) {
        assert_eq!(parse_timestamp(input), expected, "{input}");
    }

    #[test]
    fn timestamps() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01 00:00:00", Some(0)),
            ("2014-04-01 00:05:00", Some(1_396_310_700_000)),
            ("2014-04-01T00:05:00Z", Some(1_396_310_700_000)),
            ("2014-04-01T02:05:00+02:00", Some(1_396_310_700_000)),
            ("2014-03-31T19:05:00-05:00", Some(1_396_310_700_000)),
            ("2014-04-01T00:05:00.250Z", Some(1_396_310_700_250)),
            ("2014-04-01", Some(1_396_310_400_000)),
            ("1396310700", Some(1_396_310_700_000)),
            ("1396310700000", Some(1_396_310_700_000)),
            ("1396310700.5", Some(1_396_310_700_500)),
            ("\"2000-02-29 12:00:00\"", Some(951_825_600_000)),
            ("2014-13-01 00:00:00", None),
            ("yesterday", None),
            ("", None),
            ("2014-04-01X00:05:00", None),
            ("2014/04/01 00:05:00", Some(1_396_310_700_000)),
            ("2014/04-01 00:05:00", None),
            ("2014-04-01 00:05", Some(1_396_310_700_000)),
        ];
        for (i, e) in cases {
            check_ts(i, *e);
        }
    }

    fn score(text: &str) -> (String, CsvReport) {
        let mut out = Vec::new();
        let r = score_csv(text.as_bytes(), &mut out, &DetectorConfig::default()).unwrap();
        (String::from_utf8(out).unwrap(), r)
    }

    #[test]
    fn csv_one_row_per_input_row_and_warnings() {
        let mut text = String::from("time;temp;status;hum\n");
        for i in 0..400 {
            let t = 20.0 + (i % 5) as f64 * 0.1;
            let temp = if i == 350 { 45.0 } else { t };
            let hum = if i == 10 {
                String::new()
            } else {
                format!("{},5", 40 + i % 3)
            };
            text.push_str(&format!("{};{temp};ok;{hum}\n", 1_700_000_000 + i * 60));
        }
        let (out, r) = score(&text);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 401);
        assert_eq!(lines[0], "timestamp,anomaly_score,alert");
        assert_eq!(r.rows, 400);
        assert_eq!(r.metrics, vec!["temp".to_string(), "hum".to_string()]);
        assert!(
            r.warnings.iter().any(|w| w.contains("status")),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("hum") && w.contains('1'))
        );
        assert!(lines[351].ends_with(",1"), "{}", lines[351]);
        assert!(lines[351].starts_with("1700021000;") || lines[351].starts_with("1700021000,"));
        // Two metrics are one device: the alarm opened by the spike is held until the device
        // has been back for `close_m` rows, and nothing else alarms.
        let alerted: Vec<usize> = (1..lines.len())
            .filter(|&i| lines[i].ends_with(",1"))
            .collect();
        let close = DeviceModelConfig::default().close_m as usize;
        assert_eq!(
            alerted,
            (351..351 + close).collect::<Vec<_>>(),
            "{}",
            r.alert_rows
        );
    }

    #[test]
    fn history_gives_the_device_model_a_head_start() {
        let csv = |from: usize, to: usize, gap_from: usize| {
            let mut text = String::from("time,flow,pressure\n");
            for i in from..to {
                let flow = 10.0 + 3.0 * (i as f64 / 5.0).sin() + (i * 7919 % 13) as f64 * 0.01;
                let gap = if i >= gap_from { 1.0 } else { 0.0 };
                let pressure = 0.5 * flow + (i * 104_729 % 11) as f64 * 0.005 + gap;
                text.push_str(&format!("{},{flow},{pressure}\n", 1_700_000_000 + i * 60));
            }
            text
        };
        let history = csv(0, 200, usize::MAX);
        // Pressure leaves its relation to flow from the input's 10th row on.
        let input = csv(200, 260, 210);
        let run = |history: Option<&str>| {
            let mut out = Vec::new();
            score_csv_with(
                history,
                input.as_bytes(),
                &mut out,
                &DetectorConfig::default(),
                &DeviceModelConfig::default(),
            )
            .unwrap();
            let alerts: Vec<bool> = String::from_utf8(out)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| l.ends_with(",1"))
                .collect();
            alerts
        };
        let with = run(Some(&history));
        assert!(with[..10].iter().all(|a| !a), "{with:?}");
        assert!(with[10..15].iter().any(|a| *a), "{with:?}");
        assert!(with[15..].iter().all(|a| *a), "{with:?}");
        // Without it, the model is still learning its first 120 rows: nothing is raised.
        assert!(run(None).iter().all(|a| !a));
    }

    #[test]
    fn csv_quoted_cells() {
        assert_eq!(
            split_line(r#""2020-01-01 00:00:00","12,5", 3 ,"a;b""#, ','),
            vec!["2020-01-01 00:00:00", "12,5", "3", "a;b"]
        );
        assert_eq!(split_line("a;;b", ';'), vec!["a", "", "b"]);
        let mut text = String::from("\"time\",\"t\"\n");
        for i in 0..200 {
            text.push_str(&format!(
                "\"{}\",\"{}\"\n",
                1_600_000_000_000i64 + i * 1000,
                5 + i % 3
            ));
        }
        let (out, r) = score(&text);
        assert_eq!(r.rows, 200);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(out.lines().count(), 201);
    }

    #[test]
    fn csv_errors() {
        let mut out = Vec::new();
        let cfg = DetectorConfig::default();
        assert!(matches!(
            score_csv("".as_bytes(), &mut out, &cfg),
            Err(AiError::Csv(_))
        ));
        assert!(matches!(
            score_csv("ts,a\n2020-01-01,x\n".as_bytes(), &mut out, &cfg),
            Err(AiError::Csv(_))
        ));
        assert!(matches!(
            score_csv("ts,a\nnot-a-time,1\n".as_bytes(), &mut out, &cfg),
            Err(AiError::Timestamp { line: 2, .. })
        ));
    }
}

/// Forecast accuracy on one series, rolling origin (see [`evaluate_forecast`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastEval {
    /// Sampling interval of the series, ms.
    pub step_ms: i64,
    /// Forecast origins evaluated.
    pub origins: usize,
    /// Mean MASE of the MSTL + AutoETS forecast.
    pub mase: f64,
    /// Mean MASE of the seasonal-naive forecast (the same day one day earlier; last value
    /// when a day is not a whole number of steps).
    pub mase_seasonal_naive: f64,
    /// Fraction of actual values inside the 95 % interval.
    pub coverage: f64,
}

/// Reads a `timestamp,value` CSV (first two columns) into (ms, value) pairs.
pub fn read_series(path: &Path) -> Result<Vec<(i64, f64)>, AiError> {
    let text = std::fs::read_to_string(path).map_err(|e| AiError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut it = line.split(',');
        let (Some(ts), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let ts = parse_timestamp(ts).ok_or_else(|| AiError::Timestamp {
            line: i + 1,
            value: ts.to_string(),
        })?;
        if let Ok(v) = v.trim().parse::<f64>() {
            out.push((ts, v));
        }
    }
    Ok(out)
}

/// Rolling-origin evaluation of [`crate::forecast::try_forecast`] on one series: forecasts one
/// day ahead from `origins` origins spread over the last 30 % of the series (each trained on
/// everything before it), and compares with the seasonal-naive forecast by MASE (both scaled by
/// the in-sample seasonal-naive error of the training part).
pub fn evaluate_forecast(series: &[(i64, f64)], origins: usize) -> Result<ForecastEval, AiError> {
    use crate::forecast::{mase, resample, try_forecast};
    if series.len() < 20 {
        return Err(AiError::Forecast("series too short to evaluate".into()));
    }
    let mut gaps: Vec<i64> = series.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let step = gaps[gaps.len() / 2].max(1);
    let (_, y) = resample(series, step)?;
    let day = 86_400_000 / step;
    let season = if 86_400_000 % step == 0 {
        day as usize
    } else {
        1
    };
    let horizon = (day.max(1) as usize).min(y.len() / 4);
    let (mut sum_ours, mut sum_naive, mut inside, mut total, mut n) = (0.0, 0.0, 0, 0, 0);
    for k in 0..origins {
        let frac = 0.7 + 0.3 * k as f64 / origins as f64;
        let origin = ((y.len() as f64 * frac) as usize).min(y.len() - horizon);
        let train = &y[..origin];
        let actual = &y[origin..origin + horizon];
        let hist: Vec<(i64, f64)> = train
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * step, v))
            .collect();
        let f = try_forecast(&hist, horizon as i64 * step, step)?;
        let ours: Vec<f64> = f.iter().map(|p| p.value).collect();
        let naive: Vec<f64> = (0..horizon)
            .map(|h| {
                if season > 1 && train.len() >= season {
                    train[train.len() - season + h % season]
                } else {
                    train[train.len() - 1]
                }
            })
            .collect();
        let (Some(a), Some(b)) = (
            mase(train, actual, &ours, season),
            mase(train, actual, &naive, season),
        ) else {
            continue;
        };
        sum_ours += a;
        sum_naive += b;
        n += 1;
        for (p, &v) in f.iter().zip(actual) {
            inside += usize::from(p.lower <= v && v <= p.upper);
            total += 1;
        }
    }
    if n == 0 {
        return Err(AiError::Forecast("no origin could be evaluated".into()));
    }
    Ok(ForecastEval {
        step_ms: step,
        origins: n,
        mase: sum_ours / n as f64,
        mase_seasonal_naive: sum_naive / n as f64,
        coverage: inside as f64 / total.max(1) as f64,
    })
}
