//! `Vary` (RFC 9110 §12.5.5, RFC 9111 §4.1): which request fields select a stored variant,
//! and their canonical values.

use http::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName};

/// The most fields one `Vary` may name; a response naming more is not stored.
pub(crate) const MAX_VARY_FIELDS: usize = 16;

/// The field names of a response's `Vary`, lowercased, deduplicated and sorted; `None` when
/// it names too many or cannot be read (`Vary: *` is refused before this is asked).
pub(crate) fn fields(response: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for line in response.get_all(VARY) {
        for member in line.to_str().ok()?.split(',') {
            let member = member.trim();
            if member.is_empty() {
                continue;
            }
            let name = HeaderName::from_bytes(member.as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if names.len() > MAX_VARY_FIELDS {
        return None;
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// Values, length-prefixed into one byte string: what names one variant.
pub(crate) fn encode(values: &[Box<[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// The request's canonical value of each field: lines joined by `,`, whitespace around
/// members dropped, so that formatting alone does not split variants. `Accept-Encoding` is
/// folded to the codings a cache can tell apart (RFC 9110 §12.5.3); `Accept-Language` is
/// lowercased with its weights rewritten (see [`accept_language`]).
pub(crate) fn values(request: &HeaderMap, names: &[HeaderName]) -> Vec<Box<[u8]>> {
    names.iter().map(|name| value(request, name)).collect()
}

pub(crate) fn value(request: &HeaderMap, name: &HeaderName) -> Box<[u8]> {
    if name == ACCEPT_ENCODING
        && let Some(folded) = accept_encoding(request)
    {
        return folded.as_bytes().into();
    }
    if name == ACCEPT_LANGUAGE
        && let Some(canonical) = accept_language(request)
    {
        return canonical.into_bytes().into();
    }
    let mut out = Vec::new();
    for line in request.get_all(name) {
        for member in line.as_bytes().split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(member);
        }
    }
    out.into()
}

/// The members of every line of a weighted list field (RFC 9110 §12.4.2), lowercased, each
/// with its weight in thousandths (1000 without one), in order; empty members skipped.
/// `None` when a line cannot be read or a member has another parameter than a weight in
/// 0..=1 (the value is then keyed as sent).
fn weighted(request: &HeaderMap, name: &HeaderName) -> Option<Vec<(String, u16)>> {
    let mut members = Vec::new();
    for line in request.get_all(name) {
        for member in line.to_str().ok()?.split(',') {
            let mut params = member.split(';');
            let token = params.next().unwrap_or("").trim().to_ascii_lowercase();
            if token.is_empty() {
                continue;
            }
            let mut weight = 1000;
            for param in params {
                let (name, value) = param.split_once('=')?;
                // RFC 9110 §12.4.2: the weight's `q` is case-insensitive.
                if !name.trim().eq_ignore_ascii_case("q") {
                    return None;
                }
                let q: f32 = value.trim().parse().ok()?;
                if !(0.0..=1.0).contains(&q) {
                    return None;
                }
                weight = (q * 1000.0).round() as u16;
            }
            members.push((token, weight));
        }
    }
    Some(members)
}

/// `Accept-Language` in canonical form: language ranges lowercased (RFC 4647 §2: they are
/// case-insensitive), weights read case-insensitively and written back shortest (`q=1`
/// dropped), ranges ordered by weight, heaviest first, keeping the order of equal weights
/// (which many servers read as a preference: `en, de` and `de, en` stay two variants).
/// `None` when a weight cannot be read (the value is then kept as sent).
fn accept_language(request: &HeaderMap) -> Option<String> {
    let mut ranges = weighted(request, &ACCEPT_LANGUAGE)?;
    // Stable: equal weights keep their order.
    ranges.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut out = String::new();
    for (range, weight) in ranges {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&range);
        match weight {
            1000.. => {}
            0 => out.push_str(";q=0"),
            w => {
                out.push_str(";q=0.");
                out.push_str(format!("{w:03}").trim_end_matches('0'));
            }
        }
    }
    Some(out)
}

/// Whether the coding of a response (its `Content-Encoding`) is one the request's folded
/// `Accept-Encoding` variant accepts: an origin that ignores weights answers `gzip` to
/// `gzip;q=0`, and that answer must not be stored as the identity variant.
pub(crate) fn coding_accepted(request: &HeaderMap, response: &HeaderMap) -> bool {
    // Only where the variant is keyed on it, and the request said something (RFC 9110
    // §12.5.3: without the field any coding is acceptable).
    let varies = fields(response).is_some_and(|f| f.contains(&ACCEPT_ENCODING));
    if !varies || !request.contains_key(ACCEPT_ENCODING) {
        return true;
    }
    let Some(folded) = accept_encoding(request) else {
        return true; // keyed on the value as sent: only the same value gets it
    };
    response
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .all(|line| {
            line.to_str().is_ok_and(|line| {
                line.split(',').map(str::trim).all(|coding| {
                    let coding = coding.to_ascii_lowercase();
                    let coding = if coding == "x-gzip" { "gzip" } else { &coding };
                    coding.is_empty()
                        || coding == "identity"
                        || folded.split(',').any(|accepted| accepted == coding)
                })
            })
        })
}

/// The codings of `Accept-Encoding` that the request accepts (q > 0), as a sorted
/// comma-separated list of those origins commonly produce; `None` when it names any other
/// coding, whose effect the cache cannot know (the value is then kept as sent).
fn accept_encoding(request: &HeaderMap) -> Option<&'static str> {
    const KNOWN: [&str; 4] = ["br", "deflate", "gzip", "zstd"];
    // Each known coding as the request named it (accepted or refused), and `*` for the
    // rest: an explicit `gzip;q=0` stands whatever `*` says (RFC 9110 §12.5.3).
    let mut named: [Option<bool>; 4] = [None; 4];
    let mut star: Option<bool> = None;
    for (coding, weight) in weighted(request, &ACCEPT_ENCODING)? {
        let refused = weight == 0;
        let coding = if coding == "x-gzip" { "gzip" } else { &coding };
        match coding {
            "*" => star = Some(star.unwrap_or(true) && !refused),
            "identity" => {}
            other => match KNOWN.iter().position(|k| *k == other) {
                // Named twice: refused if either says so.
                Some(i) => named[i] = Some(named[i].unwrap_or(true) && !refused),
                None if refused => {}
                None => return None,
            },
        }
    }
    let accepted = named.map(|n| n.unwrap_or(star.unwrap_or(false)));
    const TABLE: [&str; 16] = [
        "",
        "br",
        "deflate",
        "br,deflate",
        "gzip",
        "br,gzip",
        "deflate,gzip",
        "br,deflate,gzip",
        "zstd",
        "br,zstd",
        "deflate,zstd",
        "br,deflate,zstd",
        "gzip,zstd",
        "br,gzip,zstd",
        "deflate,gzip,zstd",
        "br,deflate,gzip,zstd",
    ];
    let index = accepted
        .iter()
        .enumerate()
        .fold(0, |acc, (i, &on)| acc | (usize::from(on) << i));
    Some(TABLE[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn vary_fields_are_canonical_and_bounded() {
        let v = fields(&headers(&[
            ("vary", "Accept-Language, accept-encoding"),
            ("vary", "Accept-Language"),
        ]));
        assert_eq!(
            v.unwrap()
                .iter()
                .map(HeaderName::as_str)
                .collect::<Vec<_>>(),
            ["accept-encoding", "accept-language"]
        );
        let many = (0..17)
            .map(|i| format!("x-f{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(fields(&headers(&[("vary", &many)])), None);
        assert_eq!(fields(&headers(&[("vary", "bad header name")])), None);
    }

    #[test]
    fn request_values_ignore_formatting_and_fold_codings() {
        let names = [ACCEPT_ENCODING, HeaderName::from_static("accept-language")];
        let a = values(
            &headers(&[
                ("accept-encoding", "gzip, br;q=1"),
                ("accept-language", "en ,fr"),
            ]),
            &names,
        );
        let b = values(
            &headers(&[
                ("accept-encoding", "br,x-gzip,identity"),
                ("accept-language", "en"),
                ("accept-language", "fr"),
            ]),
            &names,
        );
        assert_eq!(a, b);
        assert_eq!(&*a[0], b"br,gzip");
        let refused = values(
            &headers(&[("accept-encoding", "gzip;q=0, deflate")]),
            &names,
        );
        assert_eq!(&*refused[0], b"deflate");
        let upper = values(
            &headers(&[("accept-encoding", "gzip;Q=0, deflate")]),
            &names,
        );
        assert_eq!(
            &*upper[0], b"deflate",
            "the weight's name is case-insensitive"
        );
        for refusing_with_star in ["gzip;q=0, *", "*, gzip;q=0", "*;q=1, GZIP;Q=0"] {
            let v = values(&headers(&[("accept-encoding", refusing_with_star)]), &names);
            assert_eq!(&*v[0], b"br,deflate,zstd", "{refusing_with_star}");
        }
        let unreadable = values(&headers(&[("accept-encoding", "gzip;q=x")]), &names);
        assert_eq!(&*unreadable[0], b"gzip;q=x", "kept as sent");
        // An origin that ignores weights answers gzip to `gzip;q=0`: not for this variant.
        let gzip = headers(&[("content-encoding", "gzip"), ("vary", "Accept-Encoding")]);
        let refusing = headers(&[("accept-encoding", "gzip;q=0")]);
        assert!(!coding_accepted(&refusing, &gzip));
        assert!(coding_accepted(
            &headers(&[("accept-encoding", "gzip")]),
            &gzip
        ));
        assert!(coding_accepted(&refusing, &HeaderMap::new()));
        // No variants, or a request that did not say: any coding may be stored.
        let unvaried = headers(&[("content-encoding", "gzip")]);
        assert!(coding_accepted(&refusing, &unvaried));
        assert!(coding_accepted(&HeaderMap::new(), &gzip));
        assert_eq!(&*values(&HeaderMap::new(), &names)[0], b"");
        // A coding the cache does not know is kept as sent: it may select another body.
        let odd = values(&headers(&[("accept-encoding", "gzip, compress")]), &names);
        assert_eq!(&*odd[0], b"gzip,compress");
    }
}
