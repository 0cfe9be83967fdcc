//! authentik's time deltas (`hours=1;minutes=30`, Python `timedelta` keyword arguments) against
//! flowgate's durations (`1h30m`), both ways.

/// Seconds of an authentik timedelta (`hours=1;minutes=30`; keys case-insensitive, floats,
/// unknown keys ignored, at least one known key).
pub fn timedelta_seconds(s: &str) -> Result<f64, String> {
    let mut total = 0.0;
    let mut known = false;
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("invalid time delta {s:?} (expected e.g. hours=1;minutes=30)"));
        };
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("invalid number in time delta {s:?}"))?;
        let unit = match k.trim().to_ascii_lowercase().as_str() {
            "weeks" => 7.0 * 86_400.0,
            "days" => 86_400.0,
            "hours" => 3600.0,
            "minutes" => 60.0,
            "seconds" => 1.0,
            "milliseconds" => 0.001,
            "microseconds" => 0.000_001,
            _ => continue,
        };
        known = true;
        total += v * unit;
    }
    if !known {
        return Err(format!("invalid time delta {s:?} (no known unit)"));
    }
    Ok(total)
}

/// A flowgate duration for a number of seconds (`0s`, `90s`, `15m`, `1h30m`, `7d`).
pub fn native_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// An authentik timedelta for a flowgate duration string.
pub fn timedelta_of(native: &str) -> Result<String, String> {
    let d = crate::config::duration::parse_duration(native)?;
    Ok(format!("seconds={}", d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas() {
        assert_eq!(timedelta_seconds("hours=1;minutes=30").unwrap(), 5400.0);
        assert_eq!(timedelta_seconds("Seconds=0").unwrap(), 0.0);
        assert_eq!(timedelta_seconds("days=1; foo=3").unwrap(), 86_400.0);
        assert!(timedelta_seconds("foo=3").is_err());
        assert!(timedelta_seconds("hours").is_err());
        assert_eq!(native_duration(5400), "1h30m");
        assert_eq!(native_duration(30 * 86_400), "4w2d");
        assert_eq!(timedelta_of("1h30m").unwrap(), "seconds=5400");
    }
}
