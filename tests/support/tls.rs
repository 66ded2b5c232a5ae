//! Certificates for TLS-only Redis servers, made with `openssl` in a temp dir of their own
//! ([`Pki`]): a CA, a second CA that signed nothing of this one's, a server certificate for
//! 127.0.0.1 and a client certificate.

use super::{temp_dir, Access};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temp dir removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (install the openssl package): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `<name>.crt` / `<name>.key` in `dir` (P-256 keys: quick to make).
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=jobq test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(format!("{name}.crt"))
}

/// A certificate `<name>.crt` / `<name>.key` signed by CA `ca`, with extensions `ext`.
fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write extension file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

/// The certificates, as files; dropping it removes them.
pub struct Pki {
    _dir: Scratch,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    /// Certificate and key for a server on 127.0.0.1 (serverAuth only).
    pub server: (PathBuf, PathBuf),
    /// Certificate and key of a client (clientAuth only).
    pub client: (PathBuf, PathBuf),
}

pub fn make_pki() -> Pki {
    let dir = temp_dir("tls");
    let ca = make_ca(&dir, "ca");
    let other_ca = make_ca(&dir, "other-ca");
    let server = make_cert(
        &dir,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    let client = make_cert(
        &dir,
        "ca",
        "client",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    );
    Pki {
        _dir: Scratch(dir),
        ca,
        other_ca,
        server,
        client,
    }
}

/// A path as an argument or a setting.
pub fn path_text(p: &Path) -> String {
    p.to_str().expect("a UTF-8 path").to_owned()
}

impl Pki {
    /// redis-server's arguments for serving TLS with the server certificate, trusting the CA
    /// and, with `auth_clients`, requiring a client certificate it signed.
    pub fn server_args(&self, auth_clients: bool) -> Vec<String> {
        let auth = if auth_clients { "yes" } else { "no" };
        [
            "--tls-cert-file",
            &path_text(&self.server.0),
            "--tls-key-file",
            &path_text(&self.server.1),
            "--tls-ca-cert-file",
            &path_text(&self.ca),
            "--tls-auth-clients",
            auth,
        ]
        .map(String::from)
        .to_vec()
    }

    /// redis-cli's arguments for TLS with the CA and the client certificate.
    pub fn cli_args(&self) -> Vec<String> {
        [
            "--tls",
            "--cacert",
            &path_text(&self.ca),
            "--cert",
            &path_text(&self.client.0),
            "--key",
            &path_text(&self.client.1),
        ]
        .map(String::from)
        .to_vec()
    }

    /// How the harness reaches a node that requires TLS with a client certificate: with the CA
    /// and the client certificate.
    pub fn access(&self) -> Access {
        #[cfg(feature = "redis-tls")]
        {
            let read =
                |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            Access {
                tls: Some(redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: read(&self.client.0),
                        client_key: read(&self.client.1),
                    }),
                    root_cert: Some(read(&self.ca)),
                }),
                ..Access::default()
            }
        }
        #[cfg(not(feature = "redis-tls"))]
        panic!("the harness speaks TLS to Redis with the redis-tls feature only")
    }
}
