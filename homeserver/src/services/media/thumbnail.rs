//! Making thumbnails (spec: Client-Server API § Thumbnails): `crop` fills the requested box and
//! cuts the overflow, `scale` fits the image inside it keeping its aspect ratio; never larger
//! than the original (no upscaling). EXIF orientation is applied first, so a portrait photo
//! stays upright, and the thumbnail is encoded afresh, so no metadata (GPS position, camera)
//! survives into it. Animated GIFs stay animated when asked. CPU-heavy: callers run this on a
//! blocking thread.

use std::io::Cursor;

use image::{
    AnimationDecoder, DynamicImage, ImageDecoder, ImageFormat, ImageReader, codecs::gif::GifDecoder,
    imageops::FilterType,
};

use crate::config::ThumbnailSize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Crop,
    Scale,
}

impl Method {
    pub fn parse(method: &str) -> Option<Self> {
        match method {
            "crop" => Some(Method::Crop),
            "scale" => Some(Method::Scale),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crop => "crop",
            Method::Scale => "scale",
        }
    }
}

/// The size to make for a request: the smallest configured size of that method at least as
/// large as asked, else exactly what was asked (so a thumbnail is never smaller than asked).
pub fn choose_size(configured: &[ThumbnailSize], width: u32, height: u32, method: Method) -> (u32, u32) {
    configured
        .iter()
        .filter(|size| size.method == method.as_str() && size.width >= width && size.height >= height)
        .min_by_key(|size| u64::from(size.width) * u64::from(size.height))
        .map_or((width, height), |size| (size.width, size.height))
}

/// A made thumbnail.
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("the image has {0} pixels, more than may be thumbnailed")]
    TooManyPixels(u64),
    /// The original is no larger than asked: serve it instead (spec: no upscaling).
    #[error("the original is smaller than the thumbnail asked for")]
    UseOriginal,
    #[error("not an image that can be thumbnailed: {0}")]
    Unsupported(String),
}

/// The pixel dimensions of an image, read from its header only.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ThumbnailError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| ThumbnailError::Unsupported(error.to_string()))?;
    reader.into_dimensions().map_err(|error| ThumbnailError::Unsupported(error.to_string()))
}

/// Makes a thumbnail of `bytes` (an image) of `width` x `height` by `method`.
pub fn make(
    bytes: &[u8],
    width: u32,
    height: u32,
    method: Method,
    animated: bool,
    max_pixels: u64,
) -> Result<Thumbnail, ThumbnailError> {
    let unsupported = |error: image::ImageError| ThumbnailError::Unsupported(error.to_string());
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Unsupported(e.to_string()))?;
    let format = reader.format();
    let (source_width, source_height) = dimensions(bytes)?;
    let pixels = u64::from(source_width) * u64::from(source_height);
    if pixels > max_pixels {
        return Err(ThumbnailError::TooManyPixels(pixels));
    }
    if source_width <= width && source_height <= height {
        return Err(ThumbnailError::UseOriginal);
    }
    if animated && format == Some(ImageFormat::Gif) {
        return animated_gif(bytes, width, height, method);
    }
    let mut decoder = reader.into_decoder().map_err(unsupported)?;
    let orientation = decoder.orientation().map_err(unsupported)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unsupported)?;
    image.apply_orientation(orientation);
    let resized = resize(&image, width, height, method);
    // Photographs stay JPEG; anything that may have transparency becomes PNG.
    let (format, content_type) = if format == Some(ImageFormat::Jpeg) {
        (ImageFormat::Jpeg, "image/jpeg")
    } else {
        (ImageFormat::Png, "image/png")
    };
    let resized = if format == ImageFormat::Jpeg { DynamicImage::ImageRgb8(resized.to_rgb8()) } else { resized };
    let mut out = Cursor::new(Vec::new());
    resized.write_to(&mut out, format).map_err(unsupported)?;
    Ok(Thumbnail { bytes: out.into_inner(), content_type, width: resized.width(), height: resized.height() })
}

fn resize(image: &DynamicImage, width: u32, height: u32, method: Method) -> DynamicImage {
    match method {
        // Fill the box and cut what sticks out, unless the image is smaller than the box in one
        // direction (no upscaling): then fit what there is.
        Method::Crop if image.width() >= width && image.height() >= height => {
            image.resize_to_fill(width, height, FilterType::Triangle)
        }
        Method::Crop => {
            let (w, h) = (width.min(image.width()), height.min(image.height()));
            image.resize_to_fill(w, h, FilterType::Triangle)
        }
        Method::Scale => image.resize(width.min(image.width()), height.min(image.height()), FilterType::Triangle),
    }
}

/// Every frame resized, with its timing, as an animated GIF.
fn animated_gif(bytes: &[u8], width: u32, height: u32, method: Method) -> Result<Thumbnail, ThumbnailError> {
    let unsupported = |error: image::ImageError| ThumbnailError::Unsupported(error.to_string());
    let decoder = GifDecoder::new(Cursor::new(bytes)).map_err(unsupported)?;
    let frames = decoder.into_frames().collect_frames().map_err(unsupported)?;
    let mut out = Vec::new();
    let (mut out_width, mut out_height) = (width, height);
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(unsupported)?;
        let resized: Vec<image::Frame> = frames
            .into_iter()
            .map(|frame| {
                let delay = frame.delay();
                let image = resize(&DynamicImage::ImageRgba8(frame.into_buffer()), width, height, method);
                (out_width, out_height) = (image.width(), image.height());
                image::Frame::from_parts(image.to_rgba8(), 0, 0, delay)
            })
            .collect();
        encoder.encode_frames(resized).map_err(unsupported)?;
    }
    Ok(Thumbnail { bytes: out, content_type: "image/gif", width: out_width, height: out_height })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 200]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn sizes() -> Vec<ThumbnailSize> {
        crate::config::MediaConfig::default().thumbnail_sizes
    }

    #[test]
    fn requests_snap_up_to_a_configured_size() {
        assert_eq!(choose_size(&sizes(), 30, 30, Method::Crop), (32, 32));
        assert_eq!(choose_size(&sizes(), 50, 50, Method::Crop), (96, 96));
        assert_eq!(choose_size(&sizes(), 300, 200, Method::Scale), (320, 240));
        assert_eq!(choose_size(&sizes(), 1000, 1000, Method::Scale), (1000, 1000), "never smaller than asked");
    }

    #[test]
    fn crop_fills_and_scale_fits() {
        let source = jpeg(400, 200);
        let crop = make(&source, 96, 96, Method::Crop, false, u64::MAX).unwrap();
        assert_eq!((crop.width, crop.height, crop.content_type), (96, 96, "image/jpeg"));
        let scale = make(&source, 320, 240, Method::Scale, false, u64::MAX).unwrap();
        assert_eq!((scale.width, scale.height), (320, 160), "aspect kept");
        assert!(matches!(make(&source, 800, 600, Method::Scale, false, u64::MAX), Err(ThumbnailError::UseOriginal)));
        assert!(matches!(make(&source, 32, 32, Method::Crop, false, 1000), Err(ThumbnailError::TooManyPixels(80_000))));
        assert!(matches!(
            make(b"not an image", 32, 32, Method::Crop, false, u64::MAX),
            Err(ThumbnailError::Unsupported(_))
        ));
    }

    /// A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).
    pub fn rotated_jpeg(width: u32, height: u32) -> Vec<u8> {
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
        let image = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([x as u8, 0, 0]));
        let mut out = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut out);
        encoder.set_exif_metadata(exif).unwrap();
        encoder.write_image(image.as_raw(), width, height, image::ExtendedColorType::Rgb8).unwrap();
        out
    }

    #[test]
    fn exif_orientation_is_applied_and_metadata_dropped() {
        let source = rotated_jpeg(400, 200);
        let thumbnail = make(&source, 320, 240, Method::Scale, false, u64::MAX).unwrap();
        assert_eq!((thumbnail.width, thumbnail.height), (120, 240), "a portrait photo stays upright");
        let mut decoder =
            ImageReader::new(Cursor::new(&thumbnail.bytes)).with_guessed_format().unwrap().into_decoder().unwrap();
        assert_eq!(decoder.exif_metadata().unwrap(), None, "no EXIF (orientation, GPS…) in the thumbnail");
    }

    #[test]
    fn animated_gifs_keep_their_frames() {
        let mut gif = Vec::new();
        {
            let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
            let frames = (0..3u8)
                .map(|i| image::Frame::new(image::RgbaImage::from_pixel(100, 80, image::Rgba([i * 80, 0, 0, 255]))));
            encoder.encode_frames(frames).unwrap();
        }
        let thumbnail = make(&gif, 32, 32, Method::Crop, true, u64::MAX).unwrap();
        assert_eq!(thumbnail.content_type, "image/gif");
        let frames = GifDecoder::new(Cursor::new(&thumbnail.bytes)).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].buffer().dimensions(), (32, 32));
        let still = make(&gif, 32, 32, Method::Crop, false, u64::MAX).unwrap();
        assert_eq!(still.content_type, "image/png");
    }
}
