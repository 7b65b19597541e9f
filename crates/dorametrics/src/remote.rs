//! The HTTP client of the commands that talk to a running server (`--url`): http or https,
//! trusting the system's certificate authorities and any given with `--ca-cert`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Clone, Default)]
pub struct CaCertArg {
    /// A PEM file of CA certificates to trust for an https --url, besides the system's (for a
    /// server whose certificate a private CA signed).
    #[arg(long, env = "DORA_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

/// A client for `--url`, trusting `ca_cert`'s certificates too.
pub fn client(ca_cert: Option<&Path>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!(
                "--ca-cert {} holds no usable PEM certificate",
                path.display()
            )
        })?;
        anyhow::ensure!(
            !certificates.is_empty(),
            "--ca-cert {} holds no PEM certificate",
            path.display()
        );
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("cannot set up the HTTP client")
}
