//! A purge by path prefix or tag, as stores pass it between instances.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A purge made on some instance: every response stored before `at` under a path at or below
/// `name` (a prefix purge) or carrying the tag `name` is gone (hard) or stale (soft).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeNotice {
    /// A path prefix (`true`) or a tag (`false`).
    pub prefix: bool,
    /// The prefix or the tag.
    pub name: String,
    /// Stale instead of gone.
    pub soft: bool,
    /// When it was made: in this process's clock (a notice heard from Redis carries Redis's
    /// time, converted by the store).
    pub at: SystemTime,
}

impl PurgeNotice {
    /// The field it is kept under in Redis: `p:<prefix>` or `t:<tag>`.
    pub(crate) fn field(&self) -> String {
        format!("{}:{}", if self.prefix { 'p' } else { 't' }, self.name)
    }

    /// The value kept with it: `<µs since the epoch>:<h|s>` (written by `purge.lua`).
    #[cfg(test)]
    pub(crate) fn value(&self) -> String {
        let micros = self
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        format!("{micros}:{}", if self.soft { 's' } else { 'h' })
    }

    /// Reads a field and value back; `None` for anything malformed.
    pub(crate) fn parse(field: &[u8], value: &[u8]) -> Option<Self> {
        let field = std::str::from_utf8(field).ok()?;
        let (kind, name) = field.split_once(':')?;
        let prefix = match kind {
            "p" => true,
            "t" => false,
            _ => return None,
        };
        let value = std::str::from_utf8(value).ok()?;
        let (micros, how) = value.split_once(':')?;
        let soft = match how {
            "s" => true,
            "h" => false,
            _ => return None,
        };
        let at = UNIX_EPOCH.checked_add(Duration::from_micros(micros.parse().ok()?))?;
        Some(Self {
            prefix,
            name: name.to_owned(),
            soft,
            at,
        })
    }

    /// The announcement: `P<field>=<value>` (removals announce a canonical key, which
    /// starts with `G`; written by `purge.lua`).
    #[cfg(test)]
    pub(crate) fn message(&self) -> String {
        format!("P{}={}", self.field(), self.value())
    }

    /// Reads an announcement back.
    pub(crate) fn from_message(message: &[u8]) -> Option<Self> {
        let body = message.strip_prefix(b"P")?;
        // The value holds no `=`; the name may.
        let split = body.iter().rposition(|&b| b == b'=')?;
        Self::parse(&body[..split], &body[split + 1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let notice = PurgeNotice {
            prefix: true,
            name: "/a=b:c".into(),
            soft: true,
            at: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        };
        assert_eq!(
            PurgeNotice::from_message(notice.message().as_bytes()),
            Some(notice.clone())
        );
        assert_eq!(
            PurgeNotice::parse(notice.field().as_bytes(), notice.value().as_bytes()),
            Some(notice)
        );
        for bad in [
            &b"P"[..],
            b"Px:y=1:h",
            b"Pp:a=zz:h",
            b"Pp:a=1:q",
            b"G\x00\x00",
        ] {
            assert_eq!(PurgeNotice::from_message(bad), None);
        }
    }
}
