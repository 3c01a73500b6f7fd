//! Ollama API simulator (being written).

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:11434")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(args: SimArgs) -> std::io::Result<()> {
    let _ = args;
    Ok(())
}
