//! How figures are written: three significant digits, k and M suffixes,
//! thousands separators, byte counts.

/// `v` with three significant digits (all of its digits from 1,000 up,
/// with thousands separators).
pub fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 && v.is_finite() {
        thousands(v.round() as u64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A rate with a k or M suffix.
pub fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{} M", sig3(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", sig3(v / 1e3))
    } else {
        sig3(v)
    }
}

/// Megabytes per second, whole above 1,000.
pub fn megabytes(v: f64) -> String {
    if v >= 1000.0 {
        thousands(v.round() as u64)
    } else {
        sig3(v)
    }
}

/// A byte count in MiB or GiB.
pub fn bytes(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else {
        format!("{} MiB", thousands(b >> 20))
    }
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
