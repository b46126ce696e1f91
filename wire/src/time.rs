//! Timestamps on the wire: RFC 3339 strings in UTC.
//!
//! With the default `full` feature the types are chrono's. The SPA turns the feature off and
//! gets [`lite`] instead: the same JSON with a few hundred bytes of wasm where chrono's parser and
//! calendar cost it about 13 KB. Field types are written `DateTime<Utc>` either way, which is also
//! what utoipa recognises as `format: date-time`.
//!
//! [`unix_seconds`], [`from_unix_seconds`] and [`civil`] work with either, so code that only shows
//! times (the SPA) compiles the same whichever types it gets.

#[cfg(feature = "full")]
pub use chrono::{DateTime, Utc};
#[cfg(not(feature = "full"))]
pub use lite::{DateTime, Utc};

/// Seconds since 1970-01-01T00:00:00Z (rounded down).
pub fn unix_seconds(t: &DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// Milliseconds since 1970-01-01T00:00:00Z (rounded down).
pub fn unix_millis(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The time `secs` seconds after 1970-01-01T00:00:00Z.
pub fn from_unix_seconds(secs: i64) -> DateTime<Utc> {
    #[cfg(feature = "full")]
    return DateTime::from_timestamp(secs, 0).unwrap_or_default();
    #[cfg(not(feature = "full"))]
    return DateTime::from_parts(secs, 0);
}

/// A time's calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub fn civil(t: &DateTime<Utc>) -> Civil {
    lite::civil_from_unix(unix_seconds(t))
}

/// Dependency-free RFC 3339 timestamps (UTC, nanoseconds), as chrono writes and reads them.
pub mod lite {
    use std::fmt::Write;
    use std::marker::PhantomData;

    use super::Civil;

    /// The only time zone on Petrel's wire.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct Utc;

    /// A point in time (seconds and nanoseconds since the Unix epoch); `Tz` is always [`Utc`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct DateTime<Tz> {
        secs: i64,
        nanos: u32,
        tz: PhantomData<Tz>,
    }

    impl DateTime<Utc> {
        pub fn from_parts(secs: i64, nanos: u32) -> Self {
            DateTime {
                secs: secs + i64::from(nanos / 1_000_000_000),
                nanos: nanos % 1_000_000_000,
                tz: PhantomData,
            }
        }

        pub fn timestamp(&self) -> i64 {
            self.secs
        }

        pub fn timestamp_millis(&self) -> i64 {
            self.secs * 1000 + i64::from(self.nanos / 1_000_000)
        }

        pub fn timestamp_subsec_nanos(&self) -> u32 {
            self.nanos
        }

        /// RFC 3339 as chrono's serde writes it: `Z`, and 0, 3, 6 or 9 digits of fraction.
        pub fn to_rfc3339(&self) -> String {
            let c = civil_from_unix(self.secs);
            let mut out = String::with_capacity(30);
            // Years outside 0..=9999 are not RFC 3339; chrono adds a sign there, and so does this.
            if (0..=9999).contains(&c.year) {
                let _ = write!(out, "{:04}", c.year);
            } else {
                let _ = write!(out, "{:+05}", c.year);
            }
            let _ = write!(out, "-{:02}-{:02}T{:02}:{:02}:{:02}", c.month, c.day, c.hour, c.minute, c.second);
            let n = self.nanos;
            if n == 0 {
            } else if n.is_multiple_of(1_000_000) {
                let _ = write!(out, ".{:03}", n / 1_000_000);
            } else if n.is_multiple_of(1_000) {
                let _ = write!(out, ".{:06}", n / 1_000);
            } else {
                let _ = write!(out, ".{n:09}");
            }
            out.push('Z');
            out
        }

        /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)`, `T` also `t` or a space, `Z` also `z`.
        pub fn parse_rfc3339(s: &str) -> Option<Self> {
            let b = s.as_bytes();
            let num = |from: usize, len: usize| -> Option<i64> {
                let digits = b.get(from..from + len)?;
                digits
                    .iter()
                    .try_fold(0i64, |acc, d| d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0')))
            };
            let sep = |at: usize, ok: &[u8]| b.get(at).is_some_and(|c| ok.contains(c));
            if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
                return None;
            }
            let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
            let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
            if !(1..=12).contains(&month)
                || day < 1
                || day > days_in_month(year, month as u32).into()
                || hour > 23
                || minute > 59
                || second > 60
            {
                return None;
            }
            let mut i = 19;
            let mut nanos = 0u32;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    // Digits past nanoseconds are dropped, as chrono does.
                    if i - start < 9 {
                        nanos = nanos * 10 + u32::from(b[i] - b'0');
                    }
                    i += 1;
                }
                if i == start {
                    return None;
                }
                for _ in (i - start)..9 {
                    nanos *= 10;
                }
            }
            let offset = match b.get(i)? {
                b'Z' | b'z' if i + 1 == b.len() => 0,
                // `+HH:MM`, or `+HHMM` as chrono also reads it.
                c @ (b'+' | b'-') if (i + 6 == b.len() && b[i + 3] == b':') || i + 5 == b.len() => {
                    let minutes_at = if i + 6 == b.len() { i + 4 } else { i + 3 };
                    let (h, m) = (num(i + 1, 2)?, num(minutes_at, 2)?);
                    if h > 23 || m > 59 {
                        return None;
                    }
                    let o = h * 3600 + m * 60;
                    if *c == b'-' { -o } else { o }
                }
                _ => return None,
            };
            // A leap second (:60) counts as the next second's start, as in Unix time.
            let secs =
                days_from_civil(year, month as u32, day as u32) * 86_400 + hour * 3600 + minute * 60 + second;
            Some(Self::from_parts(secs - offset, nanos))
        }
    }

    impl serde::Serialize for DateTime<Utc> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(&self.to_rfc3339())
        }
    }

    impl<'de> serde::Deserialize<'de> for DateTime<Utc> {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let s = String::deserialize(deserializer)?;
            Self::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 date and time"))
        }
    }

    fn is_leap(year: i64) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    fn days_in_month(year: i64, month: u32) -> u8 {
        match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, any year).
    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    pub(crate) fn civil_from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: rem / 3600, minute: rem / 60 % 60, second: rem % 60 }
    }
}

#[cfg(all(test, feature = "full"))]
mod tests {
    use super::lite;

    /// The lite types read and write exactly what chrono's serde does.
    #[test]
    fn lite_matches_chrono() {
        let samples = [
            "1970-01-01T00:00:00Z",
            "2026-11-26T16:26:34.123Z",
            "2024-02-29T23:59:59.123456Z",
            "2000-03-01T00:00:00.000000001Z",
            "1969-12-31T23:59:59.999999999Z",
            "1900-02-28T12:00:00Z",
            "2400-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.5Z",
            "2026-05-04T03:02:01+02:30",
            "2026-05-04t03:02:01.25-11:00",
            "2026-05-04 03:02:01z",
            "2026-05-04T03:02:01.5-0130",
        ];
        for s in samples {
            let c: chrono::DateTime<chrono::Utc> = serde_json::from_value(s.into()).unwrap();
            let l: lite::DateTime<lite::Utc> = serde_json::from_value(s.into()).unwrap();
            assert_eq!(
                (l.timestamp(), l.timestamp_subsec_nanos()),
                (c.timestamp(), c.timestamp_subsec_nanos()),
                "{s}"
            );
            assert_eq!(serde_json::to_value(l).unwrap(), serde_json::to_value(c).unwrap(), "{s}");
            assert_eq!(l.timestamp_millis(), super::unix_millis(&c), "{s}");
            let civil = super::civil(&c);
            use chrono::{Datelike, Timelike};
            assert_eq!(
                (civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second),
                (i64::from(c.year()), c.month(), c.day(), c.hour(), c.minute(), c.second()),
                "{s}"
            );
        }
        for secs in (-100_000_000_000i64..100_000_000_000).step_by(7_777_777_777) {
            let c = super::from_unix_seconds(secs);
            let l = lite::DateTime::from_parts(secs, 0);
            assert_eq!(serde_json::to_value(l).unwrap(), serde_json::to_value(c).unwrap(), "{secs}");
        }
        for bad in [
            "",
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T00:00:00",
            "2026-11-26T00:00:00.Z",
            "2026-11-26T00:00:00Zjunk",
            "2026-11-26T00:00:00+01:0",
            "2026-11-26T00:00:00+01",
        ] {
            assert!(
                serde_json::from_value::<chrono::DateTime<chrono::Utc>>(bad.into()).is_err(),
                "chrono reads {bad}"
            );
            assert!(
                serde_json::from_value::<lite::DateTime<lite::Utc>>(bad.into()).is_err(),
                "lite reads {bad}"
            );
        }
    }
}

#[cfg(all(test, not(feature = "full")))]
mod lite_tests {
    /// Without chrono to compare with: the wire's own timestamps read and write RFC 3339.
    #[test]
    fn round_trips() {
        for s in ["1970-01-01T00:00:00Z", "2026-11-26T16:26:34.123Z", "2024-02-29T23:59:59.123456789Z"] {
            let t: super::DateTime<super::Utc> = serde_json::from_value(s.into()).unwrap();
            assert_eq!(serde_json::to_value(t).unwrap(), s);
        }
        let t = super::from_unix_seconds(1_764_174_394);
        assert_eq!(super::unix_seconds(&t), 1_764_174_394);
        let c = super::civil(&t);
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second), (2025, 11, 26, 16, 26, 34));
    }
}
