//! Client addresses that a client cannot forge: whatever it writes to the left of what the
//! trusted proxies appended (open quotes, bytes ≥ 0x80, thousands of hops, 64 KiB), the
//! address is the one the trusted part alone gives. Also the single-address headers and
//! the default peer address on hyper, axum and tonic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use http::{HeaderName, HeaderValue, Request};
use parapet_core::{ClientIp, ClientIpError, ForwardedHeader, PeerIp, RequestHead};
use proptest::prelude::*;

const LB: &str = "10.0.0.1:443";

fn request(peer: &str, header: &str, lines: &[Vec<u8>]) -> Request<()> {
    let mut request = Request::new(());
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    let name = HeaderName::from_bytes(header.as_bytes()).unwrap();
    for line in lines {
        request
            .headers_mut()
            .append(name.clone(), HeaderValue::from_bytes(line).unwrap());
    }
    request
}

fn client(key: &ClientIp, request: &Request<()>) -> Result<IpAddr, ClientIpError> {
    key.client(&RequestHead::of(request))
}

/// Bytes a client can put in a header value (RFC 9110 field-content, obs-text included).
fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b" \t,;=\"\\[]:".to_vec()),
        4 => 0x21u8..=0x7e,
        1 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..200)
}

fn untrusted_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_filter("outside 10/8", |(a, ..)| *a != 10)
        .prop_map(|(a, b, c, d)| Ipv4Addr::new(a, b, c, d))
}

/// What a trusted proxy writes about `ip`, in `Forwarded` syntax.
fn forwarded_element(ip: IpAddr, style: u8) -> String {
    match (ip, style % 3) {
        (IpAddr::V4(v4), 0) => format!("for={v4}"),
        (IpAddr::V4(v4), 1) => format!("for=\"{v4}:4711\";proto=https"),
        (IpAddr::V4(v4), _) => format!("proto=http;for={v4};by=10.0.0.9"),
        (IpAddr::V6(v6), _) => format!("for=\"[{v6}]:443\""),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_client_prefix_never_changes_the_address(
        prefix in client_bytes(),
        client_ip in untrusted_v4(),
        proxies in prop::collection::vec(1u8..=254, 0..4),
        style in any::<u8>(),
        own_line in any::<bool>(),
    ) {
        let key_xff = ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap();
        let key_fwd = key_xff.clone().header(ForwardedHeader::Forwarded);
        let client_ip = IpAddr::V4(client_ip);
        let hops: Vec<IpAddr> = proxies.iter().map(|p| IpAddr::V4(Ipv4Addr::new(10, 1, 1, *p))).collect();

        // X-Forwarded-For: the proxies append ", client, proxy…" to what the client sent.
        let mut suffix = client_ip.to_string();
        for hop in &hops {
            suffix.push_str(&format!(", {hop}"));
        }
        let lines = |suffix: &str| -> Vec<Vec<u8>> {
            if own_line {
                vec![prefix.clone(), suffix.as_bytes().to_vec()]
            } else {
                let mut line = prefix.clone();
                line.extend_from_slice(b", ");
                line.extend_from_slice(suffix.as_bytes());
                vec![line]
            }
        };
        let forged = request(LB, "x-forwarded-for", &lines(&suffix));
        let honest = request(LB, "x-forwarded-for", &[suffix.as_bytes().to_vec()]);
        prop_assert_eq!(client(&key_xff, &forged), Ok(client_ip));
        prop_assert_eq!(client(&key_xff, &honest), Ok(client_ip));

        // Forwarded: the same with RFC 7239 elements.
        let mut suffix = forwarded_element(client_ip, style);
        for hop in &hops {
            suffix.push_str(", ");
            suffix.push_str(&forwarded_element(*hop, style.wrapping_add(1)));
        }
        let forged = request(LB, "forwarded", &lines(&suffix));
        prop_assert_eq!(client(&key_fwd, &forged), Ok(client_ip));
    }
}

#[test]
fn huge_and_hostile_prefixes() {
    let key = ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap();
    let mut hops = vec!["10.9.9.9"; 10_000].join(",").into_bytes();
    hops.extend_from_slice(b", 203.0.113.7");
    let mut big = vec![b'a'; 64 * 1024];
    big.extend_from_slice(b", 203.0.113.7");
    for line in [hops, big, b"for=\"\\\", 203.0.113.7".to_vec()] {
        let r = request(LB, "x-forwarded-for", &[line]);
        assert_eq!(client(&key, &r), Ok("203.0.113.7".parse().unwrap()));
    }
}

#[test]
fn single_address_headers_are_read_only_from_trusted_peers() {
    let key = ClientIp::trusted_proxies(["10.0.0.0/8"])
        .unwrap()
        .header(ForwardedHeader::CfConnectingIp);
    let from_edge = request(LB, "cf-connecting-ip", &[b"198.51.100.4".to_vec()]);
    assert_eq!(
        client(&key, &from_edge),
        Ok("198.51.100.4".parse().unwrap())
    );
    // A client connecting directly cannot claim an address.
    let direct = request(
        "198.51.100.99:5000",
        "cf-connecting-ip",
        &[b"1.2.3.4".to_vec()],
    );
    assert_eq!(client(&key, &direct), Ok("198.51.100.99".parse().unwrap()));
    // Two values, or garbage, from the edge: no address.
    let twice = request(
        LB,
        "cf-connecting-ip",
        &[b"1.2.3.4".to_vec(), b"5.6.7.8".to_vec()],
    );
    assert_eq!(client(&key, &twice), Err(ClientIpError::BadHop));
    let garbage = request(LB, "cf-connecting-ip", &[b"\xffnope".to_vec()]);
    assert_eq!(client(&key, &garbage), Err(ClientIpError::BadHop));
    // IPv4-mapped is read as IPv4; a missing header from the edge is the edge itself.
    let mapped = request(LB, "cf-connecting-ip", &[b"::ffff:198.51.100.4".to_vec()]);
    assert_eq!(client(&key, &mapped), Ok("198.51.100.4".parse().unwrap()));
    let none = request(LB, "x-other", &[]);
    assert_eq!(client(&key, &none), Ok("10.0.0.1".parse().unwrap()));
    for name in [
        "x-real-ip",
        "true-client-ip",
        "fly-client-ip",
        "X-Forwarded-For",
        "forwarded",
    ] {
        assert!(ForwardedHeader::from_name(name).is_some(), "{name}");
    }
    assert!(ForwardedHeader::from_name("x-client-ip-of-my-choice").is_none());
}

#[test]
fn no_peer_address_is_the_servers_misconfiguration() {
    let request = Request::new(());
    let head = RequestHead::of(&request);
    assert_eq!(PeerIp::new().ip(&head), Err(ClientIpError::NoPeer));
    let message = ClientIpError::NoPeer.to_string();
    assert!(
        message.contains("into_make_service_with_connect_info"),
        "{message}"
    );
}

#[cfg(feature = "axum")]
#[test]
fn the_default_peer_reads_axum_connect_info() {
    let mut request = Request::new(());
    let addr: SocketAddr = "[::ffff:192.0.2.8]:5000".parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    assert_eq!(
        PeerIp::new().ip(&RequestHead::of(&request)),
        Ok("192.0.2.8".parse().unwrap())
    );
}

#[cfg(feature = "tonic")]
#[test]
fn the_default_peer_reads_tonic_connect_info() {
    let mut request = Request::new(());
    request
        .extensions_mut()
        .insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some("192.0.2.9:5000".parse().unwrap()),
        });
    assert_eq!(
        PeerIp::new().ip(&RequestHead::of(&request)),
        Ok("192.0.2.9".parse().unwrap())
    );
}
