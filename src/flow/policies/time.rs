//! The `time` policy: the time of day (UTC) is inside a window on listed weekdays.

use super::{verdict, Decision, PolicyInput};

/// Weekday (0 = Monday) and minute of day, UTC, for milliseconds since the epoch.
pub(super) fn weekday_minute(now_ms: u64) -> (u8, u32) {
    let secs = now_ms / 1000;
    let days = secs / 86_400;
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    let weekday = ((days + 3) % 7) as u8;
    let minute = ((secs % 86_400) / 60) as u32;
    (weekday, minute)
}

/// The time is inside the window on a listed weekday; `from > to` spans midnight (the weekday
/// is the one the window started on).
pub(super) fn time(weekdays: &[u8], from: u32, to: u32, input: &PolicyInput) -> Decision {
    let (day, minute) = weekday_minute(input.now_ms);
    let ok = if from <= to {
        weekdays.contains(&day) && minute >= from && minute < to
    } else if minute >= from {
        weekdays.contains(&day)
    } else {
        let yesterday = (day + 6) % 7;
        minute < to && weekdays.contains(&yesterday)
    };
    verdict(ok, "time of day")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_of_known_dates() {
        // 2026-11-25 12:34 UTC is a Wednesday.
        assert_eq!(weekday_minute(1_795_610_040_000), (2, 12 * 60 + 34));
        assert_eq!(weekday_minute(0), (3, 0));
    }

    #[test]
    fn windows_and_midnight() {
        let at = |ms| PolicyInput {
            now_ms: ms,
            ..Default::default()
        };
        let wed_1234 = 1_795_610_040_000;
        assert!(time(&[2], 8 * 60, 18 * 60, &at(wed_1234)).passing);
        assert!(!time(&[0, 1], 8 * 60, 18 * 60, &at(wed_1234)).passing);
        assert!(!time(&[2], 13 * 60, 18 * 60, &at(wed_1234)).passing);
        // 22:00-06:00 starting Tuesday covers Wednesday 01:00.
        let wed_0100 = wed_1234 - (11 * 60 + 34) * 60_000;
        assert!(time(&[1], 22 * 60, 6 * 60, &at(wed_0100)).passing);
        assert!(!time(&[2], 22 * 60, 6 * 60, &at(wed_0100)).passing);
    }
}
