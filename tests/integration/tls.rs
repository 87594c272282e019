//! https targets: a local TLS server with a certificate from a test CA.

use std::convert::Infallible;
use std::sync::Arc;

use crate::support::{prepare_error, run_file};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kvchaos::exit::Exit;
use kvchaos::summary::StopReason;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// A CA (PEM) and a TLS server for `localhost` on 127.0.0.1:0 whose certificate it signed.
async fn tls_server() -> (String, u16) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"secure"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (ca.pem(), port)
}

fn scenario(dir: &std::path::Path, port: u16, ca: Option<&str>) -> std::path::PathBuf {
    let ca_line = ca
        .map(|c| format!("ca_file = \"{c}\"\n"))
        .unwrap_or_default();
    let p = dir.join("tls.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"tls\"\n[target]\nurl = \"https://localhost:{port}\"\n{ca_line}\
             [[phases]]\nduration = \"1s\"\nrate = 20\n[[requests]]\nname = \"get\"\npath = \"/\"\n"
        ),
    )
    .expect("write scenario");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_target_with_a_trusted_ca_gets_every_request() {
    let (ca_pem, port) = tls_server().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("ca.pem"), ca_pem).expect("write ca");
    let outcome = run_file(scenario(tmp.path(), port, Some("ca.pem")), tmp.path()).await;
    let s = &outcome.summary;
    assert_eq!(outcome.exit, Exit::Pass, "{:?}", s.errors);
    assert_eq!(s.overall.by_class.get("2xx").copied(), Some(20));
    assert_eq!(s.overall.bytes_received, 20 * 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_target_with_an_untrusted_certificate_fails_at_start() {
    let (_ca_pem, port) = tls_server().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let outcome = run_file(scenario(tmp.path(), port, None), tmp.path()).await;
    assert_eq!(outcome.exit, Exit::Environment);
    assert_eq!(outcome.summary.stop.reason, StopReason::TargetUnreachable);
    let detail = outcome.summary.stop.detail.unwrap_or_default();
    assert!(
        detail.contains("TLS handshake") && detail.contains("certificate"),
        "{detail}"
    );
}

#[test]
fn a_missing_ca_file_is_a_located_scenario_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = prepare_error(scenario(tmp.path(), 443, Some("nope.pem")));
    assert!(
        err.contains("tls.toml:4:11: target.ca_file: cannot read CA file"),
        "{err}"
    );
}
