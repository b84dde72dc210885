//! A private CA and a server certificate signed by it (rcgen), for `hatchery certs` and for the
//! operator's per-LoadTest certificates. The CA's key is dropped once it signed: nothing else
//! can ever be issued in its name.

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Validity from a day ago (clocks differ a little): the CA ten years, the server two.
const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 730;

/// What [`issue`] makes: the CA certificate, the server certificate and its key (PEM).
#[derive(Debug, Clone)]
pub struct Issued {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A CA, and a server certificate for `hosts` (DNS names or IP addresses) signed by it.
pub fn issue(hosts: &[String]) -> Result<Issued, rcgen::Error> {
    let today = days_since_epoch();
    let date = |days| {
        let (y, m, d) = civil(days);
        rcgen::date_time_ymd(y, m, d)
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Hatchery CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca_params.not_before, ca_params.not_after) = (date(today - 1), date(today + CA_DAYS));
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(hosts.to_vec())?;
    if let Some(first) = hosts.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (params.not_before, params.not_after) = (date(today - 1), date(today + SERVER_DAYS));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn days_since_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// Year, month and day of day `days` after 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_calendar_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_454), (2026, 1, 1));
    }

    #[test]
    fn the_certificate_names_every_host_and_the_files_are_pem() {
        let issued = issue(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(issued.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(issued.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(issued.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(issued.ca, issued.cert);
    }
}
