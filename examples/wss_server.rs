//! A `wss://` echo server.
//!
//! With a certificate chain and key (PEM), it serves them:
//!
//! ```text
//! cargo run --example wss_server -- 127.0.0.1:9443 fullchain.pem privkey.pem
//! ```
//!
//! Without, it makes a throwaway certificate authority and a certificate for `localhost`,
//! `127.0.0.1` and `::1` at startup, and writes the authority's certificate to a file it prints,
//! for a client to trust:
//!
//! ```text
//! cargo run --example wss_server
//! cargo run --example wss_client -- wss://localhost:9443/ /tmp/wsio-example-ca.pem
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use wsio::server::{requested_subprotocols, Accept, Acceptor};
use wsio::tls::{CertificateDer, PrivateKeyDer, TlsAcceptor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());
    let tls = match (args.next(), args.next()) {
        (Some(chain), Some(key)) => {
            wsio::tls::acceptor_from_pem(&std::fs::read(chain)?, &std::fs::read(key)?)?
        }
        _ => throwaway_acceptor()?,
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo server on wss://{}", listener.local_addr()?);
    let acceptor = Acceptor::new()
        .on_request(|request| Ok(Accept::new().protocol(requested_subprotocols(request).next())));
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (tls, acceptor) = (tls.clone(), acceptor.clone());
        tokio::spawn(async move {
            let result: wsio::Result<()> = async {
                let (mut ws, request) = acceptor.accept_tls(&tls, tcp).await?;
                eprintln!(
                    "{peer}: connected to {} over {:?}",
                    request.uri(),
                    ws.tls_protocol_version()
                );
                while let Some(message) = ws.recv().await {
                    let message = message?;
                    if message.is_data() {
                        ws.send(message).await?;
                    }
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => eprintln!("{peer}: closed"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}

/// Makes a certificate authority and a server certificate for the loopback names, writes the
/// authority's certificate where a client can find it, and returns the acceptor.
fn throwaway_acceptor() -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsio example CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let mut params = CertificateParams::new(names)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    let ca_path = std::env::temp_dir().join("wsio-example-ca.pem");
    std::fs::write(&ca_path, ca.pem())?;
    eprintln!("made a throwaway CA; trust it with: {}", ca_path.display());

    let chain = vec![cert.der().clone(), CertificateDer::clone(ca.der())];
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok(wsio::tls::acceptor(chain, key)?)
}
