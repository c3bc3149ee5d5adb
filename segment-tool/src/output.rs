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

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                s.push(ALPHABET[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Parses a time given as Unix seconds (`1714564800`, `1714564800.5`) or
/// RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.25+02:00`, also
/// with a space or lowercase `t`/`z`) into microseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(us) = parse_unix(s) {
        return Some(us);
    }
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 || y < 1970 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0u64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let frac = s.get(start..at)?;
        if frac.is_empty() {
            return None;
        }
        for (i, c) in frac.bytes().take(6).enumerate() {
            micros += u64::from(c - b'0') * 10u64.pow(5 - i as u32);
        }
    }
    let offset_secs: i64 = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() && b[at + 3] == b':' => {
            let oh = num(at + 1..at + 3)? as i64;
            let om = num(at + 4..at + 6)? as i64;
            let v = oh * 3600 + om * 60;
            if sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days as i64 * 86_400 + (h * 3600 + mi * 60 + se) as i64 - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

fn parse_unix(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    let mut micros = 0u64;
    for (i, c) in frac.bytes().take(6).enumerate() {
        micros += u64::from(c - b'0') * 10u64.pow(5 - i as u32);
    }
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// `(year, month, day)` to days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`, for years from 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn times_parse_and_encodings() {
        assert_eq!(
            parse_time("2024-05-01T12:00:00.123456Z"),
            Some(1_714_564_800_123_456)
        );
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000_000)
        );
        assert_eq!(parse_time("1714564800"), Some(1_714_564_800_000_000));
        assert_eq!(parse_time("1714564800.5"), Some(1_714_564_800_500_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
        assert_eq!(hex(b"\x00\xff"), "00ff");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"f"), "Zg==");
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
