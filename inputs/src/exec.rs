//! builder's ASN.1 "exec" (a.k.a. "full") record: one finished build in one DER blob.
//!
//! This is the body of builder-web's `POST /upload` and of `GET /job/:job/build/:uuid/exec`.
//! The schema, as builder's `Asn.exec` codec defines it:
//!
//! ```text
//! Exec ::= CHOICE {
//!   [0] EXPLICIT SEQUENCE {
//!     job        SEQUENCE { name UTF8String, script UTF8String,
//!                           files SEQUENCE OF Data  -- legacy, always empty
//!                           platform UTF8String OPTIONAL },
//!     uuid       UTF8String                 -- the 16 raw bytes of the build's UUID
//!     console    SEQUENCE OF SEQUENCE { delta INTEGER, line UTF8String }  -- ns since start
//!     timestamps SEQUENCE { started Time, finished Time }  -- Time ::= UTCTime | GeneralizedTime
//!     result     CHOICE { [0] EXPLICIT INTEGER, [1] EXPLICIT INTEGER, [2] EXPLICIT INTEGER,
//!                         [3] EXPLICIT UTF8String }  -- exited, signalled, stopped, message
//!     output     SEQUENCE OF Data },
//!   [1] EXPLICIT NULL }                     -- reserved, never sent
//! Data ::= SEQUENCE { path UTF8String, data UTF8String -- arbitrary bytes }
//! ```
//!
//! The decoder is a minimal hand-written DER reader: the schema has a fixed depth (no generic
//! recursion), every length is checked against the bytes that are actually left, and vectors
//! grow per decoded element, never from a declared count. builder's OCaml codec does not check
//! that UTF8String contents are UTF-8; this module keeps `data` and `uuid` as bytes, decodes
//! `script` and console lines lossily (they are shown as text, and a stray Latin-1 byte in a
//! build log must not make the upload fail), and requires UTF-8 for names and paths.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};

/// One finished build as builder sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub job: ExecJob,
    /// The build's UUID, raw (`uuid::Uuid::from_bytes` turns it into a UUID).
    pub uuid: [u8; 16],
    pub console: Vec<ConsoleLine>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub result: ExecResult,
    /// Every file the build left behind, in the order builder sent them. Paths are untrusted:
    /// run [`validate_output_path`] before using one on a file system.
    pub outputs: Vec<ExecOutput>,
}

/// The job a build ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecJob {
    pub name: String,
    pub script: String,
    /// `None` when the sender left it out; builder then assumes [`DEFAULT_PLATFORM`].
    pub platform: Option<String>,
}

/// What builder's decoder substitutes for a missing platform.
pub const DEFAULT_PLATFORM: &str = "no-platform";

impl ExecJob {
    /// The platform, or builder's default for records that carry none.
    pub fn platform_or_default(&self) -> &str {
        self.platform.as_deref().unwrap_or(DEFAULT_PLATFORM)
    }
}

/// One line of build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Nanoseconds since the build started.
    pub delta_ns: i64,
    pub line: String,
}

/// How the build process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecResult {
    Exited(i32),
    Signalled(i32),
    Stopped(i32),
    /// The build did not run to an exit status (e.g. the worker failed); free text.
    Message(String),
}

/// One artifact: its path inside the build directory and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub path: String,
    pub data: Vec<u8>,
}

/// Why a blob is not a valid exec record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecDecodeError {
    #[error("{at}: input ends early")]
    Truncated { at: &'static str },
    #[error("{at}: expected tag 0x{expected:02x}, found 0x{found:02x}")]
    UnexpectedTag { at: &'static str, expected: u8, found: u8 },
    #[error("{at}: multi-byte tag numbers are not used by this format")]
    HighTagNumber { at: &'static str },
    #[error("{at}: indefinite length is not DER")]
    IndefiniteLength { at: &'static str },
    #[error("{at}: length is not minimally encoded (not DER)")]
    NonMinimalLength { at: &'static str },
    #[error("{at}: declared length {declared} exceeds the {available} bytes left")]
    LengthExceedsInput { at: &'static str, declared: u64, available: usize },
    #[error("{at}: {count} unexpected trailing bytes")]
    TrailingBytes { at: &'static str, count: usize },
    #[error("{at}: malformed INTEGER (empty or not minimally encoded)")]
    MalformedInteger { at: &'static str },
    #[error("{at}: INTEGER out of range")]
    IntegerOutOfRange { at: &'static str },
    #[error("{at}: not valid UTF-8")]
    InvalidUtf8 { at: &'static str },
    #[error("uuid: expected 16 bytes, found {0}")]
    BadUuidLength(usize),
    #[error("{at}: malformed time")]
    MalformedTime { at: &'static str },
    #[error("{at}: unknown CHOICE alternative with tag 0x{tag:02x}")]
    UnknownChoice { at: &'static str, tag: u8 },
    #[error("the reserved alternative [1] NULL carries no build")]
    ReservedAlternative,
}

/// Why a record cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecEncodeError {
    /// GeneralizedTime has four year digits.
    #[error("{0} is outside the years 0..=9999 that GeneralizedTime can carry")]
    TimeOutOfRange(DateTime<Utc>),
}

/// Why an output path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputPathError {
    #[error("empty path")]
    Empty,
    #[error("path longer than {MAX_OUTPUT_PATH_LEN} bytes")]
    TooLong,
    #[error("absolute path")]
    Absolute,
    #[error("empty path component")]
    EmptyComponent,
    #[error("`.` or `..` path component")]
    DotComponent,
    #[error("NUL byte in path")]
    Nul,
    #[error("backslash in path")]
    Backslash,
    #[error("control character in path")]
    Control,
}

/// Generous for nested build directories, small enough to bound the work per path.
pub const MAX_OUTPUT_PATH_LEN: usize = 4096;

/// Checks that an output path is a plain relative path that stays inside the build directory:
/// `/`-separated, non-empty components, no `.`/`..`, no NUL, backslash or other control
/// characters (they would confuse logs, shells and Windows clients).
pub fn validate_output_path(path: &str) -> Result<(), OutputPathError> {
    if path.is_empty() {
        return Err(OutputPathError::Empty);
    }
    if path.len() > MAX_OUTPUT_PATH_LEN {
        return Err(OutputPathError::TooLong);
    }
    if path.starts_with('/') {
        return Err(OutputPathError::Absolute);
    }
    for c in path.chars() {
        match c {
            '\0' => return Err(OutputPathError::Nul),
            '\\' => return Err(OutputPathError::Backslash),
            c if c.is_control() => return Err(OutputPathError::Control),
            _ => {}
        }
    }
    for component in path.split('/') {
        match component {
            "" => return Err(OutputPathError::EmptyComponent),
            "." | ".." => return Err(OutputPathError::DotComponent),
            _ => {}
        }
    }
    Ok(())
}

// Universal and context tags used by the schema.
const TAG_INTEGER: u8 = 0x02;
const TAG_NULL: u8 = 0x05;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;
const TAG_SEQUENCE: u8 = 0x30;
/// `[n] EXPLICIT` is context-specific and constructed.
const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// A DER reader over the unread rest of one constructed value.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads one tag-length-value, returning the tag and the content.
    fn any(&mut self, at: &'static str) -> Result<(u8, &'a [u8]), ExecDecodeError> {
        let (&tag, rest) = self.rest.split_first().ok_or(ExecDecodeError::Truncated { at })?;
        if tag & 0x1f == 0x1f {
            return Err(ExecDecodeError::HighTagNumber { at });
        }
        let (&first, mut rest) = rest.split_first().ok_or(ExecDecodeError::Truncated { at })?;
        let len: u64 = if first < 0x80 {
            u64::from(first)
        } else if first == 0x80 {
            return Err(ExecDecodeError::IndefiniteLength { at });
        } else {
            let n = usize::from(first & 0x7f);
            if n > 8 {
                // More than 2^64 bytes cannot be in memory.
                return Err(ExecDecodeError::LengthExceedsInput {
                    at,
                    declared: u64::MAX,
                    available: rest.len().saturating_sub(n),
                });
            }
            let (bytes, after) = rest.split_at_checked(n).ok_or(ExecDecodeError::Truncated { at })?;
            rest = after;
            let len = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            // DER: long form only from 128 on, and without leading zero bytes.
            if len < 0x80 || bytes.first() == Some(&0) {
                return Err(ExecDecodeError::NonMinimalLength { at });
            }
            len
        };
        let available = rest.len();
        let len_usize = usize::try_from(len)
            .ok()
            .filter(|&l| l <= available)
            .ok_or(ExecDecodeError::LengthExceedsInput { at, declared: len, available })?;
        let (content, after) = rest.split_at(len_usize);
        self.rest = after;
        Ok((tag, content))
    }

    fn expect(&mut self, tag: u8, at: &'static str) -> Result<&'a [u8], ExecDecodeError> {
        let found = self.peek_tag().ok_or(ExecDecodeError::Truncated { at })?;
        if found != tag {
            return Err(ExecDecodeError::UnexpectedTag { at, expected: tag, found });
        }
        self.any(at).map(|(_, content)| content)
    }

    fn sequence(&mut self, at: &'static str) -> Result<Reader<'a>, ExecDecodeError> {
        self.expect(TAG_SEQUENCE, at).map(Reader::new)
    }

    fn bytes(&mut self, at: &'static str) -> Result<&'a [u8], ExecDecodeError> {
        self.expect(TAG_UTF8_STRING, at)
    }

    fn utf8(&mut self, at: &'static str) -> Result<String, ExecDecodeError> {
        let bytes = self.bytes(at)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| ExecDecodeError::InvalidUtf8 { at })
    }

    fn text_lossy(&mut self, at: &'static str) -> Result<String, ExecDecodeError> {
        self.bytes(at).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    fn integer(&mut self, at: &'static str) -> Result<i64, ExecDecodeError> {
        parse_integer(self.expect(TAG_INTEGER, at)?, at)
    }

    fn time(&mut self, at: &'static str) -> Result<DateTime<Utc>, ExecDecodeError> {
        let (tag, content) = self.any(at)?;
        match tag {
            TAG_UTC_TIME => parse_time(content, false, at),
            TAG_GENERALIZED_TIME => parse_time(content, true, at),
            found => Err(ExecDecodeError::UnexpectedTag { at, expected: TAG_GENERALIZED_TIME, found }),
        }
    }

    fn finish(&self, at: &'static str) -> Result<(), ExecDecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ExecDecodeError::TrailingBytes { at, count: self.rest.len() })
        }
    }
}

fn parse_integer(content: &[u8], at: &'static str) -> Result<i64, ExecDecodeError> {
    match content {
        [] => return Err(ExecDecodeError::MalformedInteger { at }),
        // DER: the first nine bits must not be all zeros or all ones.
        [0x00, b, ..] if b & 0x80 == 0 => return Err(ExecDecodeError::MalformedInteger { at }),
        [0xff, b, ..] if b & 0x80 != 0 => return Err(ExecDecodeError::MalformedInteger { at }),
        _ => {}
    }
    if content.len() > 8 {
        return Err(ExecDecodeError::IntegerOutOfRange { at });
    }
    let negative = content[0] & 0x80 != 0;
    let init: i64 = if negative { -1 } else { 0 };
    Ok(content.iter().fold(init, |acc, &b| (acc << 8) | i64::from(b)))
}

/// Two ASCII digits at `s[i..i + 2]`.
fn two_digits(s: &[u8], i: usize) -> Option<u32> {
    match s.get(i..i + 2)? {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(b - b'0')),
        _ => None,
    }
}

/// UTCTime `YYMMDDhhmm[ss]` or GeneralizedTime `YYYYMMDDhhmm[ss[.f+]]`, then `Z` or `±hhmm`,
/// as builder's OCaml codec accepts them (it emits GeneralizedTime with `Z`).
fn parse_time(s: &[u8], generalized: bool, at: &'static str) -> Result<DateTime<Utc>, ExecDecodeError> {
    parse_time_opt(s, generalized).ok_or(ExecDecodeError::MalformedTime { at })
}

fn parse_time_opt(s: &[u8], generalized: bool) -> Option<DateTime<Utc>> {
    let (year, mut i) = if generalized {
        (two_digits(s, 0)? * 100 + two_digits(s, 2)?, 4)
    } else {
        // X.680: UTCTime years 50..99 are 19xx, 00..49 are 20xx.
        let yy = two_digits(s, 0)?;
        (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
    };
    let month = two_digits(s, i)?;
    let day = two_digits(s, i + 2)?;
    let hour = two_digits(s, i + 4)?;
    let minute = two_digits(s, i + 6)?;
    i += 8;
    let mut second = 0;
    let mut nanos = 0u32;
    if let Some(ss) = two_digits(s, i) {
        second = ss;
        i += 2;
        if generalized && s.get(i) == Some(&b'.') {
            i += 1;
            let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            // Nanoseconds are the finest chrono keeps; more digits are not worth a special case.
            if digits == 0 || digits > 9 {
                return None;
            }
            let mut frac = 0u32;
            for &d in &s[i..i + digits] {
                frac = frac * 10 + u32::from(d - b'0');
            }
            nanos = frac * 10u32.pow(9 - u32::try_from(digits).ok()?);
            i += digits;
        }
    }
    let offset_secs: i32 = match &s[i..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 4 => {
            let h = two_digits(rest, 0)?;
            let m = two_digits(rest, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    // Leap seconds (ss = 60) are refused: chrono's from_hms_nano_opt rejects them.
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset = FixedOffset::east_opt(offset_secs)?;
    let local = offset.from_local_datetime(&NaiveDateTime::new(date, time)).single()?;
    Some(local.with_timezone(&Utc))
}

impl Exec {
    /// Decodes a DER exec record; the whole input must be one record.
    pub fn from_der(input: &[u8]) -> Result<Self, ExecDecodeError> {
        let mut top = Reader::new(input);
        let (tag, content) = top.any("exec")?;
        top.finish("exec")?;
        match tag {
            t if t == context(0) => {}
            t if t == context(1) => {
                let mut reserved = Reader::new(content);
                let null = reserved.expect(TAG_NULL, "exec.reserved")?;
                reserved.finish("exec.reserved")?;
                return Err(if null.is_empty() {
                    ExecDecodeError::ReservedAlternative
                } else {
                    ExecDecodeError::TrailingBytes { at: "exec.reserved", count: null.len() }
                });
            }
            tag => return Err(ExecDecodeError::UnknownChoice { at: "exec", tag }),
        }
        let mut explicit = Reader::new(content);
        let mut record = explicit.sequence("exec")?;
        explicit.finish("exec")?;

        let job = decode_job(&mut record.sequence("job")?)?;

        let uuid_bytes = record.bytes("uuid")?;
        let uuid: [u8; 16] =
            uuid_bytes.try_into().map_err(|_| ExecDecodeError::BadUuidLength(uuid_bytes.len()))?;

        let mut console_seq = record.sequence("console")?;
        let mut console = Vec::new();
        while !console_seq.is_empty() {
            let mut entry = console_seq.sequence("console.line")?;
            let delta_ns = entry.integer("console.delta")?;
            let line = entry.text_lossy("console.line")?;
            entry.finish("console.line")?;
            console.push(ConsoleLine { delta_ns, line });
        }

        let mut timestamps = record.sequence("timestamps")?;
        let started = timestamps.time("timestamps.started")?;
        let finished = timestamps.time("timestamps.finished")?;
        timestamps.finish("timestamps")?;

        let result = decode_result(&mut record)?;
        let outputs = decode_data(&mut record.sequence("output")?, "output")?;
        record.finish("exec")?;
        Ok(Exec { job, uuid, console, started, finished, result, outputs })
    }

    /// Encodes the record as builder does: DER, times as GeneralizedTime, an empty legacy
    /// `files` list, and the platform only when there is one.
    pub fn to_der(&self) -> Result<Vec<u8>, ExecEncodeError> {
        let started = generalized_time(&self.started)?;
        let finished = generalized_time(&self.finished)?;

        // Lengths first, so the output is written once into an exactly sized buffer (the
        // outputs can be large; nesting by copying would move them several times).
        let job_len = string_tlv_len(self.job.name.len())
            + string_tlv_len(self.job.script.len())
            + tlv_len(0)
            + self.job.platform.as_ref().map_or(0, |p| string_tlv_len(p.len()));
        let console_len: usize = self.console.iter().map(|l| tlv_len(console_entry_len(l))).sum();
        let timestamps_len = tlv_len(started.len()) + tlv_len(finished.len());
        let result_inner = match &self.result {
            ExecResult::Exited(n) | ExecResult::Stopped(n) | ExecResult::Signalled(n) => {
                tlv_len(integer_len(i64::from(*n)))
            }
            ExecResult::Message(m) => string_tlv_len(m.len()),
        };
        let output_len: usize = self.outputs.iter().map(|o| tlv_len(output_entry_len(o))).sum();
        let record_len = tlv_len(job_len)
            + string_tlv_len(16)
            + tlv_len(console_len)
            + tlv_len(timestamps_len)
            + tlv_len(result_inner)
            + tlv_len(output_len);
        let explicit_len = tlv_len(record_len);

        let total = tlv_len(explicit_len);
        let mut out = Vec::with_capacity(total);
        write_header(&mut out, context(0), explicit_len);
        write_header(&mut out, TAG_SEQUENCE, record_len);

        write_header(&mut out, TAG_SEQUENCE, job_len);
        write_string(&mut out, self.job.name.as_bytes());
        write_string(&mut out, self.job.script.as_bytes());
        write_header(&mut out, TAG_SEQUENCE, 0);
        if let Some(platform) = &self.job.platform {
            write_string(&mut out, platform.as_bytes());
        }

        write_string(&mut out, &self.uuid);

        write_header(&mut out, TAG_SEQUENCE, console_len);
        for line in &self.console {
            write_header(&mut out, TAG_SEQUENCE, console_entry_len(line));
            write_integer(&mut out, line.delta_ns);
            write_string(&mut out, line.line.as_bytes());
        }

        write_header(&mut out, TAG_SEQUENCE, timestamps_len);
        write_header(&mut out, TAG_GENERALIZED_TIME, started.len());
        out.extend_from_slice(started.as_bytes());
        write_header(&mut out, TAG_GENERALIZED_TIME, finished.len());
        out.extend_from_slice(finished.as_bytes());

        let alternative = match &self.result {
            ExecResult::Exited(_) => 0,
            ExecResult::Signalled(_) => 1,
            ExecResult::Stopped(_) => 2,
            ExecResult::Message(_) => 3,
        };
        write_header(&mut out, context(alternative), result_inner);
        match &self.result {
            ExecResult::Exited(n) | ExecResult::Signalled(n) | ExecResult::Stopped(n) => {
                write_integer(&mut out, i64::from(*n))
            }
            ExecResult::Message(m) => write_string(&mut out, m.as_bytes()),
        }

        write_header(&mut out, TAG_SEQUENCE, output_len);
        for output in &self.outputs {
            write_header(&mut out, TAG_SEQUENCE, output_entry_len(output));
            write_string(&mut out, output.path.as_bytes());
            write_string(&mut out, &output.data);
        }
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }
}

fn decode_job(job: &mut Reader<'_>) -> Result<ExecJob, ExecDecodeError> {
    let name = job.utf8("job.name")?;
    let script = job.text_lossy("job.script")?;
    // Legacy input files: parsed for well-formedness, then dropped as builder does.
    decode_data(&mut job.sequence("job.files")?, "job.files")?;
    let platform = if job.is_empty() { None } else { Some(job.utf8("job.platform")?) };
    job.finish("job")?;
    Ok(ExecJob { name, script, platform })
}

fn decode_result(record: &mut Reader<'_>) -> Result<ExecResult, ExecDecodeError> {
    const AT: &str = "result";
    let (tag, content) = record.any(AT)?;
    let mut inner = Reader::new(content);
    let code = |inner: &mut Reader<'_>| -> Result<i32, ExecDecodeError> {
        let n = inner.integer(AT)?;
        i32::try_from(n).map_err(|_| ExecDecodeError::IntegerOutOfRange { at: AT })
    };
    let result = match tag {
        t if t == context(0) => ExecResult::Exited(code(&mut inner)?),
        t if t == context(1) => ExecResult::Signalled(code(&mut inner)?),
        t if t == context(2) => ExecResult::Stopped(code(&mut inner)?),
        t if t == context(3) => ExecResult::Message(inner.text_lossy(AT)?),
        tag => return Err(ExecDecodeError::UnknownChoice { at: AT, tag }),
    };
    inner.finish(AT)?;
    Ok(result)
}

fn decode_data(seq: &mut Reader<'_>, at: &'static str) -> Result<Vec<ExecOutput>, ExecDecodeError> {
    let mut outputs = Vec::new();
    while !seq.is_empty() {
        let mut entry = seq.sequence(at)?;
        let path = entry.utf8(at)?;
        let data = entry.bytes(at)?.to_vec();
        entry.finish(at)?;
        outputs.push(ExecOutput { path, data });
    }
    Ok(outputs)
}

fn length_len(len: usize) -> usize {
    if len < 0x80 { 1 } else { 1 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize }
}

fn tlv_len(content_len: usize) -> usize {
    1 + length_len(content_len) + content_len
}

fn string_tlv_len(len: usize) -> usize {
    tlv_len(len)
}

/// Content length of a minimal two's-complement INTEGER.
fn integer_len(n: i64) -> usize {
    // Bits needed without the redundant sign bits, plus one sign bit.
    let significant = if n < 0 { 64 - (!n).leading_zeros() } else { 64 - n.leading_zeros() };
    (significant as usize + 1).div_ceil(8)
}

fn console_entry_len(line: &ConsoleLine) -> usize {
    tlv_len(integer_len(line.delta_ns)) + string_tlv_len(line.line.len())
}

fn output_entry_len(output: &ExecOutput) -> usize {
    string_tlv_len(output.path.len()) + string_tlv_len(output.data.len())
}

fn write_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        // Short form; `len` fits in seven bits here.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    write_header(out, TAG_UTF8_STRING, bytes.len());
    out.extend_from_slice(bytes);
}

fn write_integer(out: &mut Vec<u8>, n: i64) {
    let len = integer_len(n);
    write_header(out, TAG_INTEGER, len);
    out.extend_from_slice(&n.to_be_bytes()[8 - len..]);
}

/// `YYYYMMDDhhmmss[.f]Z` with trailing zeros of the fraction dropped, as DER requires.
fn generalized_time(t: &DateTime<Utc>) -> Result<String, ExecEncodeError> {
    if !(0..=9999).contains(&t.year()) {
        return Err(ExecEncodeError::TimeOutOfRange(*t));
    }
    let mut s = t.format("%Y%m%d%H%M%S").to_string();
    // chrono represents a leap second as nanos >= 1e9; fold it into the second it extends.
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).expect("valid test time")
    }

    fn sample() -> Exec {
        Exec {
            job: ExecJob {
                name: "hello".into(),
                script: "#!/bin/sh\necho hi\n".into(),
                platform: Some("ubuntu-20.04".into()),
            },
            uuid: *b"0123456789abcdef",
            console: vec![
                ConsoleLine { delta_ns: 0, line: "start".into() },
                ConsoleLine { delta_ns: 1_500_000_000, line: "done".into() },
                ConsoleLine { delta_ns: -1, line: String::new() },
            ],
            started: ts(1_700_000_000, 0),
            finished: ts(1_700_000_060, 250_000_000),
            result: ExecResult::Exited(0),
            outputs: vec![
                ExecOutput { path: "bin/hello.hvt".into(), data: vec![0x7f, b'E', b'L', b'F', 0, 0xff] },
                ExecOutput { path: "opam-switch".into(), data: b"opam-version: \"2.0\"\n".to_vec() },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let exec = sample();
        let der = exec.to_der().expect("encodes");
        assert_eq!(Exec::from_der(&der), Ok(exec));
    }

    #[test]
    fn round_trip_every_result_and_no_platform() {
        for result in [
            ExecResult::Exited(255),
            ExecResult::Signalled(-7),
            ExecResult::Stopped(i32::MIN),
            ExecResult::Message("worker died".into()),
        ] {
            let mut exec = sample();
            exec.result = result;
            exec.job.platform = None;
            let der = exec.to_der().expect("encodes");
            let decoded = Exec::from_der(&der).expect("decodes");
            assert_eq!(decoded.job.platform_or_default(), DEFAULT_PLATFORM);
            assert_eq!(decoded, exec);
        }
    }

    #[test]
    fn round_trip_long_lengths() {
        let mut exec = sample();
        // Exercise one-, two- and three-byte long-form lengths.
        exec.outputs = [200usize, 70_000, 0, 127, 128, 255, 256]
            .iter()
            .enumerate()
            .map(|(i, &n)| ExecOutput { path: format!("f{i}"), data: vec![i as u8; n] })
            .collect();
        let der = exec.to_der().expect("encodes");
        assert_eq!(Exec::from_der(&der), Ok(exec));
    }

    #[test]
    fn integers_are_minimal() {
        for (n, bytes) in [
            (0i64, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x00, 0x80]),
            (255, &[0x00, 0xff]),
            (256, &[0x01, 0x00]),
            (-1, &[0xff]),
            (-128, &[0x80]),
            (-129, &[0xff, 0x7f]),
            (i64::MAX, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (i64::MIN, &[0x80, 0, 0, 0, 0, 0, 0, 0]),
        ] {
            let mut out = Vec::new();
            write_integer(&mut out, n);
            assert_eq!(&out[2..], bytes, "{n}");
            assert_eq!(parse_integer(bytes, "t"), Ok(n));
        }
        assert!(parse_integer(&[0x00, 0x7f], "t").is_err());
        assert!(parse_integer(&[0xff, 0x80], "t").is_err());
        assert!(parse_integer(&[], "t").is_err());
        assert!(parse_integer(&[1; 9], "t").is_err());
    }

    /// A record built byte by byte from the schema, independent of the encoder.
    fn golden() -> Vec<u8> {
        let mut job = vec![0x0c, 0x01, b'j', 0x0c, 0x02, b's', b'h', 0x30, 0x00];
        job.extend([0x0c, 0x03, b'a', b'r', b'm']);
        let mut rec = vec![0x30, job.len() as u8];
        rec.extend(job);
        rec.extend([0x0c, 0x10]);
        rec.extend(0u8..16);
        // console: one line, delta 300 ns ("02 02 01 2c"), "ok"
        rec.extend([0x30, 0x0a, 0x30, 0x08, 0x02, 0x02, 0x01, 0x2c, 0x0c, 0x02, b'o', b'k']);
        // timestamps: UTCTime 2023-11-14 22:13:20Z, GeneralizedTime 2023-11-14 22:14:20.5Z
        let utc = b"231114221320Z";
        let gen_ = b"20231114221420.5Z";
        rec.extend([0x30, (2 + utc.len() + 2 + gen_.len()) as u8, 0x17, utc.len() as u8]);
        rec.extend(utc);
        rec.extend([0x18, gen_.len() as u8]);
        rec.extend(gen_);
        // result: [1] signalled 9
        rec.extend([0xa1, 0x03, 0x02, 0x01, 0x09]);
        // output: ("a/b", "\x00\xff")
        rec.extend([0x30, 0x0b, 0x30, 0x09, 0x0c, 0x03, b'a', b'/', b'b', 0x0c, 0x02, 0x00, 0xff]);
        let mut seq = vec![0x30, rec.len() as u8];
        seq.extend(rec);
        let mut out = vec![0xa0, seq.len() as u8];
        out.extend(seq);
        out
    }

    #[test]
    fn golden_bytes_decode() {
        let exec = Exec::from_der(&golden()).expect("golden decodes");
        assert_eq!(
            exec,
            Exec {
                job: ExecJob { name: "j".into(), script: "sh".into(), platform: Some("arm".into()) },
                uuid: core::array::from_fn(|i| i as u8),
                console: vec![ConsoleLine { delta_ns: 300, line: "ok".into() }],
                started: ts(1_700_000_000, 0),
                finished: ts(1_700_000_060, 500_000_000),
                result: ExecResult::Signalled(9),
                outputs: vec![ExecOutput { path: "a/b".into(), data: vec![0, 0xff] }],
            }
        );
        // Re-encoding differs only in the started time, which builder emits as GeneralizedTime.
        let again = exec.to_der().expect("encodes");
        let mut expected = golden();
        let utc_at = expected.windows(2).position(|w| w == [0x17, 13]).expect("utc time in golden");
        expected.splice(utc_at..utc_at + 15, [&[0x18, 15][..], b"20231114221320Z"].concat());
        // Lengths of the three enclosing constructed values grow by two.
        expected[1] += 2;
        expected[3] += 2;
        let ts_at = utc_at - 2;
        expected[ts_at + 1] += 2;
        assert_eq!(again, expected);
    }

    #[test]
    fn legacy_files_are_accepted_and_dropped() {
        let der = golden();
        // Replace the empty files list by one entry ("x", "y") and fix the lengths.
        let files_at = der.windows(2).position(|w| w == [0x30, 0x00]).expect("files");
        let entry = [0x30, 0x08, 0x30, 0x06, 0x0c, 0x01, b'x', 0x0c, 0x01, b'y'];
        let mut patched = der.clone();
        patched.splice(files_at..files_at + 2, entry);
        for at in [1, 3, 5] {
            patched[at] += 8;
        }
        let exec = Exec::from_der(&patched).expect("decodes");
        assert_eq!(exec.job, Exec::from_der(&der).expect("decodes").job);
    }

    #[test]
    fn non_utf8_console_and_script_are_lossy() {
        let mut der = golden();
        let ok_at = der.windows(2).position(|w| w == b"ok").expect("line");
        der[ok_at] = 0xe9; // Latin-1 é
        let exec = Exec::from_der(&der).expect("decodes");
        assert_eq!(exec.console[0].line, "\u{fffd}k");
    }

    #[test]
    fn time_formats() {
        let t = |s: &str, g| parse_time_opt(s.as_bytes(), g);
        assert_eq!(t("20240229235959Z", true), Some(ts(1_709_251_199, 0)));
        assert_eq!(t("202402292359Z", true), Some(ts(1_709_251_140, 0)));
        assert_eq!(t("20240229235959.123456789Z", true), Some(ts(1_709_251_199, 123_456_789)));
        assert_eq!(t("20240301005959+0100", true), Some(ts(1_709_251_199, 0)));
        assert_eq!(t("500101000000Z", false), Some(ts(-631_152_000, 0)));
        assert_eq!(t("490101000000Z", false), Some(ts(2_493_072_000, 0)));
        for bad in [
            "20230229000000Z",
            "20240229235960Z",
            "20240229235959",
            "20240229235959.Z",
            "20240229235959.1234567890Z",
            "2024022923595Z",
            "20240229235959+2400",
            "2024-02-29T23:59:59Z",
            "",
        ] {
            assert_eq!(t(bad, true), None, "{bad}");
        }
        assert_eq!(t("240229235959.5Z", false), None);
        assert_eq!(generalized_time(&ts(0, 0)), Ok("19700101000000Z".into()));
        assert_eq!(generalized_time(&ts(0, 120_000_000)), Ok("19700101000000.12Z".into()));
        let far = DateTime::from_timestamp(300_000_000_000, 0).expect("year 11476");
        assert!(generalized_time(&far).is_err());
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let good = golden();
        // Every truncation fails cleanly.
        for n in 0..good.len() {
            assert!(Exec::from_der(&good[..n]).is_err(), "prefix {n}");
        }
        // Trailing garbage.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(Exec::from_der(&trailing), Err(ExecDecodeError::TrailingBytes { .. })));
        // Huge declared lengths are refused without allocating.
        for header in [
            &[0xa0, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0xa0, 0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0xa0, 0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xa0, 0xff],
        ] {
            assert!(
                matches!(
                    Exec::from_der(header),
                    Err(ExecDecodeError::LengthExceedsInput { .. } | ExecDecodeError::Truncated { .. })
                ),
                "{header:x?}"
            );
        }
        assert_eq!(
            Exec::from_der(&[0xa0, 0x80, 0, 0]),
            Err(ExecDecodeError::IndefiniteLength { at: "exec" })
        );
        assert_eq!(
            Exec::from_der(&[0xa0, 0x81, 0x05, 0x30, 0x03, 0, 0, 0]),
            Err(ExecDecodeError::NonMinimalLength { at: "exec" })
        );
        assert_eq!(Exec::from_der(&[0xbf, 0x01, 0x00]), Err(ExecDecodeError::HighTagNumber { at: "exec" }));
        assert_eq!(Exec::from_der(&[0xa1, 0x02, 0x05, 0x00]), Err(ExecDecodeError::ReservedAlternative));
        assert_eq!(
            Exec::from_der(&[0xa2, 0x00]),
            Err(ExecDecodeError::UnknownChoice { at: "exec", tag: 0xa2 })
        );
        // A wrong-size uuid.
        let mut bad_uuid = good.clone();
        let at = bad_uuid.windows(2).position(|w| w == [0x0c, 0x10]).expect("uuid");
        bad_uuid[at + 1] = 0x0f;
        bad_uuid.remove(at + 2);
        for i in [1, 3] {
            bad_uuid[i] -= 1;
        }
        assert_eq!(Exec::from_der(&bad_uuid), Err(ExecDecodeError::BadUuidLength(15)));
        // Exit codes beyond i32 are refused: [1] INTEGER 2^32 in place of [1] INTEGER 9.
        let mut big = good.clone();
        let at = big.windows(5).position(|w| w == [0xa1, 0x03, 0x02, 0x01, 0x09]).expect("result");
        big.splice(at..at + 5, [0xa1, 0x07, 0x02, 0x05, 0x01, 0, 0, 0, 0]);
        for i in [1, 3] {
            big[i] += 4;
        }
        assert_eq!(Exec::from_der(&big), Err(ExecDecodeError::IntegerOutOfRange { at: "result" }));
    }

    #[test]
    fn single_byte_corruptions_never_panic() {
        let good = sample().to_der().expect("encodes");
        for i in 0..good.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = Exec::from_der(&bad);
            }
        }
    }

    #[test]
    fn output_paths() {
        for ok in ["bin/hello.hvt", "a", "a.b/c..d/.e", "sub/dir/x y"] {
            assert_eq!(validate_output_path(ok), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("", OutputPathError::Empty),
            ("/etc/passwd", OutputPathError::Absolute),
            ("../x", OutputPathError::DotComponent),
            ("a/../../x", OutputPathError::DotComponent),
            ("a/./b", OutputPathError::DotComponent),
            ("..", OutputPathError::DotComponent),
            ("a//b", OutputPathError::EmptyComponent),
            ("a/", OutputPathError::EmptyComponent),
            ("a\0b", OutputPathError::Nul),
            ("a\\..\\b", OutputPathError::Backslash),
            ("a\nb", OutputPathError::Control),
        ] {
            assert_eq!(validate_output_path(bad), Err(err), "{bad:?}");
        }
        assert_eq!(validate_output_path(&"a".repeat(5000)), Err(OutputPathError::TooLong));
    }
}
