//! Just enough DER to read a certificate's serial number and validity end (`notAfter`).
//!
//! The webhook only needs these two fields, for the expiry gauge and for logs. A full X.509
//! parser (x509-parser and its ASN.1 stack) would be most of the crate's compile time for that.
//! Nothing on the server side validates the serving certificate (rustls only checks that the
//! key matches it; validity dates, chain and names are the *client's* business), so an expired
//! certificate loads; [`crate::tls::load_pem`] logs a warning for it. The walk below follows
//! RFC 5280 §4.1 and rejects anything it does not understand instead of guessing.

/// What the webhook reads from its serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial number's content octets, as encoded (big-endian, possibly with a leading 0).
    pub serial: Vec<u8>,
    /// `notAfter` as seconds since the Unix epoch.
    pub not_after: i64,
}

impl CertInfo {
    /// The serial as lowercase hex without a leading zero byte (as `openssl x509 -serial` shows it).
    pub fn serial_hex(&self) -> String {
        let bytes = match self.serial.as_slice() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            all => all,
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A certificate that this reader could not walk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct X509Error(&'static str);

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION_TAG: u8 = 0xa0; // [0] EXPLICIT, constructed
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads the serial and `notAfter` of a DER-encoded X.509 certificate.
impl CertInfo {
    /// Whether `notAfter` is before `now` (seconds since the Unix epoch).
    pub fn expired_at(&self, now: i64) -> bool {
        self.not_after < now
    }
}

pub fn parse(der: &[u8]) -> Result<CertInfo, X509Error> {
    let (tag, cert, _) = read_tlv(der)?;
    expect(tag, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tag, tbs, _) = read_tlv(cert)?;
    expect(tag, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;

    let (mut tag, mut value, mut rest) = read_tlv(tbs)?;
    if tag == VERSION_TAG {
        (tag, value, rest) = read_tlv(rest)?;
    }
    expect(tag, INTEGER, "serialNumber is not an INTEGER")?;
    if value.is_empty() {
        return Err(X509Error("empty serialNumber"));
    }
    let serial = value.to_vec();

    let (tag, _, rest) = read_tlv(rest)?;
    expect(tag, SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    let (tag, _, rest) = read_tlv(rest)?;
    expect(tag, SEQUENCE, "issuer is not a SEQUENCE")?;
    let (tag, validity, _) = read_tlv(rest)?;
    expect(tag, SEQUENCE, "validity is not a SEQUENCE")?;

    let (_, _, after_not_before) = read_tlv(validity)?;
    let (tag, not_after, _) = read_tlv(after_not_before)?;
    let not_after = parse_time(tag, not_after)?;
    Ok(CertInfo { serial, not_after })
}

fn expect(tag: u8, want: u8, what: &'static str) -> Result<(), X509Error> {
    if tag == want {
        Ok(())
    } else {
        Err(X509Error(what))
    }
}

/// One tag-length-value: `(tag, value, rest)`. Only single-byte tags and definite lengths
/// (DER forbids the indefinite form).
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), X509Error> {
    let (&tag, input) = input.split_first().ok_or(X509Error("truncated (tag)"))?;
    let (&first, mut input) = input.split_first().ok_or(X509Error("truncated (length)"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return Err(X509Error("unsupported length encoding"));
        }
        let (bytes, rest) = input.split_at(n);
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if input.len() < len {
        return Err(X509Error("truncated (value)"));
    }
    let (value, rest) = input.split_at(len);
    Ok((tag, value, rest))
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950–2049, RFC 5280 §4.1.2.5.1) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`; both always in UTC with seconds in certificates.
fn parse_time(tag: u8, value: &[u8]) -> Result<i64, X509Error> {
    let text = std::str::from_utf8(value).map_err(|_| X509Error("time is not ASCII"))?;
    let digits = text
        .strip_suffix('Z')
        .ok_or(X509Error("time is not in UTC (no trailing Z)"))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(X509Error("time has non-digits"));
    }
    let num = |s: &str| -> i64 { s.bytes().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')) };
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return Err(X509Error("unsupported time encoding")),
    };
    let (month, day) = (num(&rest[0..2]), num(&rest[2..4]));
    let (hour, minute, second) = (num(&rest[4..6]), num(&rest[6..8]), num(&rest[8..10]));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(X509Error("time out of range"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: &[u8], not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_serial_and_not_after() {
        // 2049 is still UTCTime, 2050 and later are GeneralizedTime: both encodings covered.
        for (date, unix) in [
            ((2030, 1, 2), 1_893_542_400),
            ((2049, 12, 31), 2_524_521_600),
            ((2051, 3, 1), 2_561_241_600),
        ] {
            let info = parse(&cert(&[0x12, 0x34, 0x56], date)).expect("parse");
            assert_eq!(info.serial_hex(), "123456");
            assert_eq!(info.not_after, unix, "{date:?}");
        }
    }

    #[test]
    fn days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn never_panics_on_garbage() {
        let good = cert(&[7], (2031, 6, 15));
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = parse(&bad);
        }
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
