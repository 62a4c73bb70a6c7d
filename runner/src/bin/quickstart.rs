//! `kvplug-quickstart [DATA_DIR]`: see `kvplug_runner::quickstart`. Run it twice: the
//! guestbook remembers, because the reference server keeps its data on disk.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(".kvplug-data"), PathBuf::from);
    kvplug_runner::quickstart::run(&data_dir, &mut std::io::stdout()).await?;
    println!(
        "==> run it again: the visit counter and the entries persist in {}",
        data_dir.display()
    );
    Ok(())
}
