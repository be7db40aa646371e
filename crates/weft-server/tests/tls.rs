//! HTTPS with rustls: a real handshake over loopback with a self-signed
//! certificate; a client that is not speaking TLS does not stop the server.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use weft_server::{Server, ServerConfig, SystemClock, tls};
use weft_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_a_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("weft.toml"), "[project]\nname = \"tls\"\n").unwrap();
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - name: n\n      func: identity\n      inputs: params:x\n      outputs: y\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf/base")).unwrap();
    std::fs::write(root.join("conf/base/parameters.yml"), "x: 1\n").unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(root.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(root.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    // A key that does not parse is a clear error naming the file.
    std::fs::write(root.join("bad.pem"), "not a key").unwrap();
    let err = tls::acceptor(&root.join("cert.pem"), &root.join("bad.pem"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad.pem"), "{err}");

    let acceptor = tls::acceptor(&root.join("cert.pem"), &root.join("key.pem")).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let store = Store::open(root.join("s.db").to_str().unwrap()).await.unwrap();
    let server = Server::new(ServerConfig::new(root), store, Arc::new(SystemClock));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(weft_server::serve(
        server,
        tls::TlsListener::new(tcp, acceptor),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // Plain HTTP on the TLS port: that connection fails, the server goes on.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = plain.read_to_end(&mut sink).await;
    assert!(!String::from_utf8_lossy(&sink).contains("200 OK"));

    let mut roots = RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"ok\""), "{text}");
    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
