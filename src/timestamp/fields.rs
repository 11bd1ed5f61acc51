//! Date fields read from a line, and how they become an instant.
//!
//! The rules for filling in what a line leaves out follow fail2ban's, so a
//! filter ported from fail2ban dates its lines the same way: no year means
//! this year unless that is more than a day ahead of now (then last year); no
//! date at all means today unless that is ahead of now (then yesterday).

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp};

/// How far ahead of `now` an inferred year may put a line before the previous
/// year is taken instead; a day absorbs clock and zone skew between hosts.
const FUTURE_TOLERANCE_SECONDS: i64 = 24 * 3600;

/// What one match of a template said; unset fields are inferred.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub year: Option<i32>,
    pub month: Option<i8>,
    pub day: Option<i8>,
    pub yday: Option<i16>,
    pub hour: i8,
    /// Set by `%I`; combined with `pm` into `hour`.
    pub hour12: Option<i8>,
    pub pm: Option<bool>,
    pub minute: i8,
    pub second: i8,
    pub nanos: i32,
    /// Seconds east of UTC, when the line says.
    pub offset: Option<i32>,
    /// Seconds since the epoch, for templates that carry nothing else.
    pub epoch: Option<(i64, i32)>,
}

/// The civil date of `now` in the zone, kept because year inference needs it
/// for every syslog line and `now` rarely changes between lines.
#[derive(Clone, Debug, Default)]
pub(crate) struct NowCache {
    key: Option<(i64, i32)>,
    civil: Option<DateTime>,
}

impl NowCache {
    fn civil(&mut self, now: Timestamp, zone: &TimeZone, offset: Option<i32>) -> DateTime {
        let key = (now.as_second(), offset.unwrap_or(i32::MIN));
        if self.key != Some(key) {
            self.key = Some(key);
            self.civil = Some(match offset.and_then(|o| Offset::from_seconds(o).ok()) {
                Some(o) => o.to_datetime(now),
                None => zone.to_datetime(now),
            });
        }
        self.civil.unwrap_or_else(|| zone.to_datetime(now))
    }
}

impl Fields {
    /// The instant these fields name, or `None` for impossible dates
    /// (Feb 30, 25:61) and years jiff cannot represent.
    pub fn resolve(
        &self,
        zone: &TimeZone,
        now: Timestamp,
        cache: &mut NowCache,
    ) -> Option<Timestamp> {
        if let Some((secs, nanos)) = self.epoch {
            return Timestamp::new(secs, nanos).ok();
        }
        let hour = match (self.hour12, self.pm) {
            (Some(12), Some(true)) => 12,
            (Some(12), _) => 0,
            (Some(h), Some(true)) => h + 12,
            (Some(h), _) => h,
            (None, _) => self.hour,
        };
        let to_ts = |dt: DateTime| -> Option<Timestamp> {
            match self.offset {
                Some(o) => Offset::from_seconds(o).ok()?.to_timestamp(dt).ok(),
                None => zone.to_timestamp(dt).ok(),
            }
        };
        let mut civil_now = None;
        let mut now_civil = |cache: &mut NowCache| {
            *civil_now.get_or_insert_with(|| cache.civil(now, zone, self.offset))
        };
        let (year, assume_year) = match self.year {
            Some(y) => (y, false),
            None => (i32::from(now_civil(cache).year()), true),
        };
        // fail2ban (Python's datetime) knows years 1 to 9999 only.
        if !(1..=9999).contains(&year) {
            return None;
        }
        let year16 = i16::try_from(year).ok()?;
        let (month, day, assume_today) = match (self.month, self.day, self.yday) {
            (Some(m), Some(d), _) => (m, d, false),
            (None, None, Some(yday)) => {
                let first = jiff::civil::Date::new(year16, 1, 1).ok()?;
                let date = first
                    .checked_add(Span::new().days(i64::from(yday) - 1))
                    .ok()?;
                if date.year() != year16 {
                    return None;
                }
                (date.month(), date.day(), false)
            }
            (None, None, None) => {
                let n = now_civil(cache);
                (n.month(), n.day(), true)
            }
            _ => return None,
        };
        let dt = DateTime::new(
            year16,
            month,
            day,
            hour,
            self.minute,
            self.second,
            self.nanos,
        )
        .ok()?;
        let mut ts = to_ts(dt)?;
        if assume_today && ts > now {
            ts = to_ts(dt.checked_sub(Span::new().days(1)).ok()?)?;
        }
        if assume_year && ts.as_second() > now.as_second().saturating_add(FUTURE_TOLERANCE_SECONDS)
        {
            let dt = DateTime::new(
                year16.checked_sub(1)?,
                month,
                day,
                hour,
                self.minute,
                self.second,
                self.nanos,
            )
            .ok()?;
            ts = to_ts(dt)?;
        }
        Some(ts)
    }
}

/// Offset of a zone abbreviation, in minutes east, for the abbreviations
/// fail2ban recognises in `%Z`/`%z` (fixed offsets, no DST switching: a log
/// line that says `CET` means `+01:00` whatever the date).
pub(crate) fn abbreviation_minutes(abbr: &str) -> Option<i32> {
    let hours_x4: i32 = match abbr {
        "" | "Z" | "EGST" | "GMT" | "UTC" | "WET" | "WT" => 0,
        "A" | "CET" | "DFT" | "WAT" | "WEDT" | "WEST" => 4,
        "B" | "CAT" | "CEDT" | "CEST" | "EET" | "SAST" | "WAST" => 8,
        "C" | "EAT" | "EEDT" | "EEST" | "IDT" | "MSK" => 12,
        "D" | "AMT" | "AZT" | "GET" | "GST" | "KUYT" | "MSD" | "MUT" | "RET" | "SAMT" | "SCT" => 16,
        "E" | "AMST" | "AQTT" | "AZST" | "HMT" | "MAWT" | "MVT" | "PKT" | "TFT" | "TJT" | "TMT"
        | "UZT" | "YEKT" => 20,
        "F" | "ALMT" | "BIOT" | "BTT" | "IOT" | "KGT" | "NOVT" | "OMST" | "YEKST" => 24,
        "G" | "CXT" | "DAVT" | "HOVT" | "ICT" | "KRAT" | "NOVST" | "OMSST" | "THA" | "WIB" => 28,
        "H" | "ACT" | "AWST" | "BDT" | "BNT" | "CAST" | "HKT" | "IRKT" | "KRAST" | "MYT"
        | "PHT" | "SGT" | "ULAT" | "WITA" | "WST" => 32,
        "I" | "AWDT" | "IRKST" | "JST" | "KST" | "PWT" | "TLT" | "WDT" | "WIT" | "YAKT" => 36,
        "K" | "AEST" | "ChST" | "PGT" | "VLAT" | "YAKST" | "YAPT" => 40,
        "L" | "AEDT" | "LHDT" | "MAGT" | "NCT" | "PONT" | "SBT" | "VLAST" | "VUT" => 44,
        "M" | "ANAST" | "ANAT" | "FJT" | "GILT" | "MAGST" | "MHT" | "NZST" | "PETST" | "PETT"
        | "TVT" | "WFT" => 48,
        "FJST" | "NZDT" => 52,
        "NFT" => 46,
        "ACDT" | "LHST" => 42,
        "ACST" => 38,
        "CCT" | "MMT" => 26,
        "NPT" => 23,
        "SLT" => 22,
        "AFT" | "IRDT" => 18,
        "IRST" => 14,
        "N" | "AZOT" | "CVT" | "EGT" => -4,
        "O" | "BRST" | "FNT" | "PMDT" | "UYST" | "WGST" => -8,
        "P" | "ADT" | "ART" | "BRT" | "CLST" | "FKST" | "GFT" | "HAA" | "PMST" | "PYST" | "SRT"
        | "UYT" | "WGT" => -12,
        "Q" | "AST" | "BOT" | "CLT" | "COST" | "EDT" | "FKT" | "GYT" | "HAE" | "HNA" | "PYT" => -16,
        "R" | "CDT" | "COT" | "EASST" | "ECT" | "EST" | "ET" | "HAC" | "HNE" | "PET" => -20,
        "S" | "CST" | "EAST" | "GALT" | "HAR" | "HNC" | "MDT" => -24,
        "T" | "HAP" | "HNR" | "MST" | "PDT" => -28,
        "U" | "AKDT" | "CIST" | "HAY" | "HNP" | "PST" | "PT" => -32,
        "V" | "AKST" | "GAMT" | "GIT" | "HADT" | "HNY" => -36,
        "W" | "CKT" | "HAST" | "HST" | "TAHT" | "TKT" => -40,
        "X" | "NUT" | "SST" => -44,
        "Y" => -48,
        "HAT" | "NDT" => -10,
        "HNT" | "NST" | "NT" => -14,
        "HLV" | "VET" => -18,
        "MART" | "MIT" => -38,
        _ => return None,
    };
    Some(hours_x4 * 15)
}

/// A `%z`/`%Z` value (`+0100`, `-05:00`, `+01`, `CET`, `CET+01`, `Z`) as
/// seconds east of UTC.
pub(crate) fn zone_offset_seconds(text: &str) -> Option<i32> {
    let split = text.find(['+', '-']).unwrap_or(text.len());
    let (abbr, off) = text.split_at(split);
    let base = abbreviation_minutes(abbr)?;
    if off.is_empty() {
        return Some(base * 60);
    }
    let b = off.as_bytes();
    let sign = if b[0] == b'-' { -1 } else { 1 };
    let num = |r: &[u8]| -> Option<i32> {
        match r {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Some(i32::from(a - b'0') * 10 + i32::from(b - b'0'))
            }
            _ => None,
        }
    };
    let minutes = match &b[1..] {
        [h1, h2] => num(&[*h1, *h2])? * 60,
        [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => num(&[*h1, *h2])? * 60 + num(&[*m1, *m2])?,
        _ => return None,
    };
    Some((base + sign * minutes) * 60)
}
