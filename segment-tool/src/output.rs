//! Output helpers shared by the commands: JSON Lines records, sizes and
//! timestamps for people.

use std::io::{self, Write};

/// Writes one JSON Lines record: `{"type": kind, "data": data}` and a newline.
pub fn json_line(out: &mut dyn Write, kind: &str, data: serde_json::Value) -> io::Result<()> {
    let record = serde_json::json!({ "type": kind, "data": data });
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}

/// A byte count for people: `512 B`, `1.5 KiB`, `64.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Microseconds since the Unix epoch as RFC 3339 UTC with microseconds:
/// `2024-05-01T12:00:00.123456Z`.
pub fn timestamp(us: u64) -> String {
    let secs = us / 1_000_000;
    let micros = us % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A duration in microseconds for people: `850us`, `1.250s`, `2h 03m 10s`.
pub fn duration(us: u64) -> String {
    if us < 1000 {
        return format!("{us}us");
    }
    if us < 1_000_000 {
        return format!("{:.3}ms", us as f64 / 1000.0);
    }
    let secs = us / 1_000_000;
    if secs < 60 {
        return format!("{:.3}s", us as f64 / 1_000_000.0);
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m {s:02}s")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian `(year, month, day)`
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            timestamp(1_714_564_800_123_456),
            "2024-05-01T12:00:00.123456Z"
        );
        // The largest value must not overflow.
        let _ = timestamp(u64::MAX);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(duration(850), "850us");
        assert_eq!(duration(1_250_000), "1.250s");
        assert_eq!(duration(7_390_000_000), "2h 03m 10s");
    }
}
