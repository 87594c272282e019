//! TLS for https targets: a rustls client (ring provider) trusting the public web PKI roots
//! plus any roots from the scenario's `ca_file`. ALPN offers only `http/1.1`, which is what
//! the engine speaks.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS client for one target host.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Largest CA file read (a bundle of a few hundred certificates is well under it).
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Reads `path` whole, refusing a file over [`MAX_CA_FILE`] (or an endless one like
/// `/dev/zero`) before it fills memory.
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut pem))
        .map_err(|e| format!("CA file \"{}\": {e}", path.display()))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!(
            "CA file \"{}\": larger than {} MiB; give a PEM file of CA certificates",
            path.display(),
            MAX_CA_FILE / (1024 * 1024)
        ));
    }
    Ok(pem)
}

impl Tls {
    /// A client for `host` trusting the web PKI roots and the certificates in `ca_file`.
    pub fn new(host: &str, ca_file: Option<&Path>) -> Result<Tls, String> {
        let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            let pem = read_capped(path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("CA file \"{}\": {e}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file \"{}\": {e}", path.display()))?;
            }
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("target host \"{host}\" is not a valid TLS server name: {e}"))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_ca_file_is_refused_before_it_fills_memory() {
        let Err(e) = Tls::new("localhost", Some(Path::new("/dev/zero"))) else {
            panic!("refused");
        };
        assert!(e.contains("larger than 4 MiB"), "{e}");
        let Err(e) = Tls::new("localhost", Some(Path::new("/no/such/ca.pem"))) else {
            panic!("missing");
        };
        assert!(e.contains("/no/such/ca.pem"), "{e}");
    }
}
