//! Video thumbnails: the first frame, extracted by `ffmpeg` when it is installed (decoding
//! video in-process would mean a codec library per format; ffmpeg is what every server uses).
//! Without ffmpeg, videos simply have no thumbnail and clients show their own placeholder.

use std::{path::Path, process::Stdio, time::Duration};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::store::MediaStore;

pub fn ffmpeg_available(ffmpeg: &str) -> bool {
    std::process::Command::new(ffmpeg)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The first frame of the video stored at `key`, as PNG bytes; None when ffmpeg cannot read
/// one (within 30 seconds).
pub async fn first_frame(ffmpeg: &str, store: &MediaStore, key: &str, size: u64, scratch: &Path) -> Option<Vec<u8>> {
    // ffmpeg wants a seekable file (MP4 keeps its index at the end): copy the video aside.
    tokio::fs::create_dir_all(scratch).await.ok()?;
    let input = scratch.join(format!("video-{}", crate::services::tokens::generate_session_id()));
    let result = async {
        let mut file = tokio::fs::File::create(&input).await.ok()?;
        let mut stream = store.read(key, 0, size).await.ok()?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.ok()?).await.ok()?;
        }
        file.flush().await.ok()?;
        let output = tokio::process::Command::new(ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(&input)
            .args(["-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), output).await.ok()?.ok()?;
        (output.status.success() && !output.stdout.is_empty()).then_some(output.stdout)
    }
    .await;
    let _ = tokio::fs::remove_file(&input).await;
    result
}
