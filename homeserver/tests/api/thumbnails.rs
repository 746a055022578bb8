//! Thumbnails: the spec's crop and scale at the configured sizes, never upscaled, stored and
//! reused, EXIF orientation applied, animations kept when asked, and video first frames when
//! ffmpeg is installed (a clear 404 when it is not).

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    helpers::{Backend, Session, Storage, TestApp, spawn_app_on},
    media::{png, upload},
};

media_backends!(images_get_crop_and_scale_thumbnails, animations_videos_and_other_files);

async fn thumbnail(app: &TestApp, user: &Session, uri: &str, query: &str) -> reqwest::Response {
    let path = uri.strip_prefix("mxc://").unwrap();
    app.client
        .get(format!("{}/_matrix/client/v1/media/thumbnail/{path}?{query}", app.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
}

fn decoded(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).unwrap()
}

async fn images_get_crop_and_scale_thumbnails(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |_| {}).await else { return };
    let alice = app.register("alice").await;
    let (_, body) = upload(&app, &alice, "image/png", Some("wide.png"), png(640, 320)).await;
    let uri = body["content_uri"].as_str().unwrap().to_owned();

    let crop = thumbnail(&app, &alice, &uri, "width=32&height=32&method=crop").await;
    assert_eq!(crop.status(), StatusCode::OK);
    assert_eq!(crop.headers()["content-type"], "image/png");
    assert!(crop.headers()["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    let first = crop.bytes().await.unwrap();
    assert_eq!(image::GenericImageView::dimensions(&decoded(&first)), (32, 32));
    let again = thumbnail(&app, &alice, &uri, "width=32&height=32&method=crop").await.bytes().await.unwrap();
    assert_eq!(first, again, "the stored thumbnail is reused");

    // 300x200 snaps up to the configured 320x240; scale keeps the aspect ratio.
    let scale = thumbnail(&app, &alice, &uri, "width=300&height=200&method=scale").await;
    let scaled = decoded(&scale.bytes().await.unwrap());
    assert_eq!(image::GenericImageView::dimensions(&scaled), (320, 160));
    // Asking for more than the original has: the original itself, never upscaled.
    let big = thumbnail(&app, &alice, &uri, "width=1000&height=1000").await;
    assert_eq!(big.status(), StatusCode::OK);
    assert_eq!(big.bytes().await.unwrap().len(), png(640, 320).len());

    // A photo taken sideways comes out upright, without its metadata.
    let (_, body) = upload(&app, &alice, "image/jpeg", Some("portrait.jpg"), rotated_jpeg()).await;
    let portrait =
        thumbnail(&app, &alice, body["content_uri"].as_str().unwrap(), "width=320&height=240&method=scale").await;
    assert_eq!(portrait.headers()["content-type"], "image/jpeg");
    let upright = decoded(&portrait.bytes().await.unwrap());
    assert_eq!(image::GenericImageView::dimensions(&upright), (120, 240));

    for (query, errcode) in [
        ("height=32", "M_MISSING_PARAM"),
        ("width=0&height=32", "M_INVALID_PARAM"),
        ("width=32&height=32&method=stretch", "M_INVALID_PARAM"),
    ] {
        let response = thumbnail(&app, &alice, &uri, query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.json::<Value>().await.unwrap()["errcode"], errcode);
    }
}

/// A 400x200 JPEG whose EXIF says "rotate 90° clockwise" (orientation 6).
fn rotated_jpeg() -> Vec<u8> {
    use image::ImageEncoder;
    let exif: Vec<u8> = [
        &b"II*\0"[..],
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &0u32.to_le_bytes(),
    ]
    .concat();
    let image = image::RgbImage::from_fn(400, 200, |x, _| image::Rgb([x as u8, 0, 0]));
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut out);
    encoder.set_exif_metadata(exif).unwrap();
    encoder.write_image(image.as_raw(), 400, 200, image::ExtendedColorType::Rgb8).unwrap();
    out
}

fn animated_gif() -> Vec<u8> {
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        let frames = (0..3u8)
            .map(|i| image::Frame::new(image::RgbaImage::from_pixel(120, 90, image::Rgba([i * 80, 40, 0, 255]))));
        encoder.encode_frames(frames).unwrap();
    }
    gif
}

/// A two-frame MP4 made by ffmpeg, when it is installed.
pub fn mp4() -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=2",
            "-frames:v",
            "2",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .status()
        .ok()?;
    status.success().then(|| std::fs::read(path).unwrap())
}

async fn animations_videos_and_other_files(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |_| {}).await else { return };
    let alice = app.register("alice").await;
    let (_, body) = upload(&app, &alice, "image/gif", Some("dance.gif"), animated_gif()).await;
    let uri = body["content_uri"].as_str().unwrap().to_owned();
    let animated = thumbnail(&app, &alice, &uri, "width=32&height=32&method=crop&animated=true").await;
    assert_eq!(animated.headers()["content-type"], "image/gif");
    let still = thumbnail(&app, &alice, &uri, "width=32&height=32&method=crop").await;
    assert_eq!(still.headers()["content-type"], "image/png", "no animation unless asked");

    let (_, text) = upload(&app, &alice, "text/plain", None, b"no pictures here".to_vec()).await;
    let response = thumbnail(&app, &alice, text["content_uri"].as_str().unwrap(), "width=32&height=32").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    match mp4() {
        Some(video) => {
            let (status, body) = upload(&app, &alice, "video/mp4", Some("clip.mp4"), video.clone()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let uri = body["content_uri"].as_str().unwrap().to_owned();
            let frame = thumbnail(&app, &alice, &uri, "width=96&height=96&method=crop").await;
            assert_eq!(frame.status(), StatusCode::OK);
            assert_eq!(image::GenericImageView::dimensions(&decoded(&frame.bytes().await.unwrap())), (96, 96));
            // Without ffmpeg the answer is a clear 404, not an error.
            let Some(bare) =
                spawn_app_on(backend, storage, |config| config.media.ffmpeg_path = "/nonexistent/ffmpeg".into()).await
            else {
                return;
            };
            let bob = bare.register("bob").await;
            let (_, body) = upload(&bare, &bob, "video/mp4", Some("clip.mp4"), video).await;
            let response = thumbnail(&bare, &bob, body["content_uri"].as_str().unwrap(), "width=96&height=96").await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            assert!(response.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("ffmpeg"));
        }
        None => {
            assert!(
                std::env::var("HEARTH_TEST_REQUIRE_FFMPEG").is_err(),
                "ffmpeg is required (HEARTH_TEST_REQUIRE_FFMPEG) but missing"
            );
            eprintln!("SKIP video thumbnails: ffmpeg is not installed");
        }
    }
}
