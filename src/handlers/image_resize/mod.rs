//! The `image_resize` job: `{"source": "in.png", "output": "out.png", "width"?: N, "height"?: N,
//! "fit"?: "contain" | "cover" | "fill", "format"?: "png" | "jpeg" | "webp"}`.
//!
//! Paths are relative to IMAGE_DIR; nothing outside it is read or written. An absolute path or a
//! `..` component is refused at submission, and at run time the real (symlink-resolved) paths are
//! checked to stay under IMAGE_DIR too. With one dimension the aspect ratio is kept; with both,
//! `fit` decides: `contain` (the default) fits inside the box keeping the ratio, `cover` fills
//! the box keeping the ratio and crops the overflow around the centre, `fill` stretches to
//! exactly the box. The output format is "format", else the output's extension. The input may be
//! PNG, JPEG or WebP whatever its name (the content decides). WebP is written lossless, JPEG at
//! quality 85 (without alpha).
//!
//! Decompression bombs: an image larger than [`MAX_PIXELS`] (by its header, before decoding) or
//! needing more than [`MAX_ALLOC`] bytes is refused, and so is an output larger than
//! [`MAX_PIXELS`].

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use serde_json::{json, Value};
use std::io::{BufWriter, Cursor};
use std::path::{Path, PathBuf};

use crate::handler::{Handler, JobContext, JobError, JobResult};

mod payload;
use payload::{parse, payload_schema, Fit, Format, Parsed};

/// Largest width or height asked for.
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest image decoded or written: 40 megapixels.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Most memory the decoder may allocate.
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;
/// Largest source file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// JPEG quality of written files.
const JPEG_QUALITY: u8 = 85;

/// The size to resize to (before a `cover` crop) and the final size.
fn target_size(src: (u32, u32), p: &Parsed) -> ((u32, u32), (u32, u32)) {
    let (sw, sh) = (f64::from(src.0), f64::from(src.1));
    let round = |v: f64| (v.round() as u32).clamp(1, u32::MAX);
    match (p.width, p.height) {
        (Some(w), None) => {
            let s = (w, round(sh * f64::from(w) / sw));
            (s, s)
        }
        (None, Some(h)) => {
            let s = (round(sw * f64::from(h) / sh), h);
            (s, s)
        }
        (Some(w), Some(h)) => match p.fit {
            Fit::Fill => ((w, h), (w, h)),
            Fit::Contain => {
                let k = (f64::from(w) / sw).min(f64::from(h) / sh);
                let s = (round(sw * k).min(w), round(sh * k).min(h));
                (s, s)
            }
            Fit::Cover => {
                let k = (f64::from(w) / sw).max(f64::from(h) / sh);
                ((round(sw * k).max(w), round(sh * k).max(h)), (w, h))
            }
        },
        (None, None) => (src, src),
    }
}

pub struct ImageResize {
    dir: PathBuf,
}

impl ImageResize {
    /// The handler for `image_dir` (IMAGE_DIR): every path of a payload is relative to it.
    pub fn new(image_dir: &str) -> ImageResize {
        ImageResize {
            dir: PathBuf::from(image_dir),
        }
    }

    /// IMAGE_DIR with symlinks resolved.
    fn root(&self) -> Result<PathBuf, JobError> {
        self.dir.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                JobError::permanent(format!(
                    "IMAGE_DIR {} does not exist, so there is no source to read",
                    self.dir.display()
                ))
            } else {
                JobError::transient(format!("cannot open IMAGE_DIR {}: {e}", self.dir.display()))
            }
        })
    }

    /// The source file's real path, checked to be a file under IMAGE_DIR.
    fn source_path(&self, root: &Path, rel: &Path) -> Result<PathBuf, JobError> {
        let shown = rel.display();
        let real = root.join(rel).canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                JobError::permanent(format!(
                    "no such file {shown:?} under IMAGE_DIR ({})",
                    self.dir.display()
                ))
            } else {
                JobError::transient(format!("cannot open {shown:?} under IMAGE_DIR: {e}"))
            }
        })?;
        if !real.starts_with(root) {
            return Err(JobError::permanent(format!(
                "\"source\" {shown:?} leads outside IMAGE_DIR (through a symlink); refused"
            )));
        }
        if !real.is_file() {
            return Err(JobError::permanent(format!(
                "\"source\" {shown:?} is not a file"
            )));
        }
        Ok(real)
    }

    /// The output's real folder (created if missing), checked to be under IMAGE_DIR, and the
    /// output's path in it.
    fn output_path(&self, root: &Path, rel: &Path) -> Result<PathBuf, JobError> {
        let shown = rel.display();
        let escapes = || {
            JobError::permanent(format!(
                "\"output\" {shown:?} leads outside IMAGE_DIR (through a symlink); refused"
            ))
        };
        let file_name = rel
            .file_name()
            .ok_or_else(|| JobError::permanent(format!("\"output\" {shown:?} names no file")))?;
        let parent = root.join(rel.parent().unwrap_or(Path::new("")));
        // Check the deepest folder that exists before creating any, so a symlinked folder
        // cannot make us create folders elsewhere.
        let mut existing = parent.as_path();
        while !existing.exists() {
            existing = existing.parent().unwrap_or(root);
        }
        let real = existing
            .canonicalize()
            .map_err(|e| JobError::transient(format!("cannot open {}: {e}", existing.display())))?;
        if !real.starts_with(root) {
            return Err(escapes());
        }
        std::fs::create_dir_all(&parent).map_err(|e| {
            JobError::transient(format!("cannot create the folder of {shown:?}: {e}"))
        })?;
        let real_parent = parent.canonicalize().map_err(|e| {
            JobError::transient(format!("cannot open the folder of {shown:?}: {e}"))
        })?;
        if !real_parent.starts_with(root) {
            return Err(escapes());
        }
        Ok(real_parent.join(file_name))
    }
}

/// Decodes with the bomb guards: dimensions from the header first, then a bounded decode.
fn decode(bytes: &[u8], shown: &str) -> Result<DynamicImage, JobError> {
    let not_image = |e: image::ImageError| {
        JobError::permanent(format!(
            "\"source\" {shown:?} is not a PNG, JPEG or WebP image that can be decoded: {e}"
        ))
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| JobError::transient(format!("cannot read {shown:?}: {e}")))?;
    if reader.format().is_none() {
        return Err(JobError::permanent(format!(
            "\"source\" {shown:?} is not a PNG, JPEG or WebP image (its content matches none of them)"
        )));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    limits.max_image_width = Some(MAX_DIMENSION * 4);
    limits.max_image_height = Some(MAX_DIMENSION * 4);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(l) => too_big(shown, &l.to_string()),
        other => not_image(other),
    })?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(too_big(shown, &format!("{w}×{h} pixels")));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(l) => too_big(shown, &l.to_string()),
        other => not_image(other),
    })
}

fn too_big(shown: &str, what: &str) -> JobError {
    JobError::permanent(format!(
        "\"source\" {shown:?} is too large to decode safely ({what}); the limit is {} megapixels and {} MiB of memory",
        MAX_PIXELS / 1_000_000,
        MAX_ALLOC / (1024 * 1024)
    ))
}

/// Encodes `img` as `format` into `w`.
fn encode(img: DynamicImage, format: Format, w: impl std::io::Write) -> image::ImageResult<()> {
    match format {
        Format::Png => img.write_with_encoder(image::codecs::png::PngEncoder::new(w)),
        Format::Jpeg => {
            let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
            let mut w = w;
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, JPEG_QUALITY);
            rgb.write_with_encoder(enc)
        }
        Format::Webp => {
            let img = if img.color().has_alpha() {
                DynamicImage::ImageRgba8(img.to_rgba8())
            } else {
                DynamicImage::ImageRgb8(img.to_rgb8())
            };
            let mut w = w;
            img.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut w))
        }
    }
}

impl Handler for ImageResize {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        parse(payload).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(payload_schema())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let p = parse(&job.payload).map_err(JobError::permanent)?;
        let shown_src = p.source.display().to_string();
        let root = self.root()?;
        let src = self.source_path(&root, &p.source)?;
        let size = std::fs::metadata(&src)
            .map_err(|e| JobError::transient(format!("cannot read {shown_src:?}: {e}")))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(JobError::permanent(format!(
                "\"source\" {shown_src:?} is {size} bytes; at most {} MiB",
                MAX_FILE_BYTES / (1024 * 1024)
            )));
        }
        let bytes = std::fs::read(&src)
            .map_err(|e| JobError::transient(format!("cannot read {shown_src:?}: {e}")))?;
        let img = decode(&bytes, &shown_src)?;
        drop(bytes);
        if job.is_cancelled() {
            return Err(job.cancel.stop_error("cancelled after decoding"));
        }
        job.progress(30, "decoded");

        let (sw, sh) = (img.width(), img.height());
        let ((rw, rh), (fw, fh)) = target_size((sw, sh), &p);
        if u64::from(rw) * u64::from(rh) > MAX_PIXELS {
            return Err(JobError::permanent(format!(
                "resizing {}×{} to {rw}×{rh} would make more than {} megapixels",
                img.width(),
                img.height(),
                MAX_PIXELS / 1_000_000
            )));
        }
        let filter = image::imageops::FilterType::Lanczos3;
        let mut out = img.resize_exact(rw, rh, filter);
        if (rw, rh) != (fw, fh) {
            out = out.crop_imm((rw - fw) / 2, (rh - fh) / 2, fw, fh);
        }
        if job.is_cancelled() {
            return Err(job.cancel.stop_error("cancelled after resizing"));
        }
        job.progress(80, "resized");

        let dest = self.output_path(&root, &p.output)?;
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{file_name}.{}.tmp", job.id));
        let (width, height) = (out.width(), out.height());
        let write = || -> Result<u64, JobError> {
            // create_new: never through a file or link someone left at the temp name.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| {
                    JobError::transient(format!("cannot create {}: {e}", tmp.display()))
                })?;
            let mut w = BufWriter::new(f);
            encode(out, p.format, &mut w).map_err(|e| match e {
                image::ImageError::IoError(e) => {
                    JobError::transient(format!("cannot write {}: {e}", tmp.display()))
                }
                other => JobError::permanent(format!(
                    "cannot encode the result as {}: {other}",
                    p.format.name()
                )),
            })?;
            let f = w
                .into_inner()
                .map_err(|e| JobError::transient(format!("cannot write {}: {e}", tmp.display())))?;
            f.sync_all()
                .map_err(|e| JobError::transient(format!("cannot write {}: {e}", tmp.display())))?;
            let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::rename(&tmp, &dest).map_err(|e| {
                JobError::transient(format!(
                    "cannot move the result into {}: {e}",
                    dest.display()
                ))
            })?;
            Ok(bytes)
        };
        let bytes = write().inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        log::info!(
            "job {} (image_resize) {shown_src} {sw}×{sh} → {} {width}×{height} {} ({bytes} bytes)",
            job.id,
            p.output.display(),
            p.format.name()
        );
        Ok(json!({
            "output": p.output.display().to_string(),
            "width": width,
            "height": height,
            "bytes": bytes,
            "format": p.format.name(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: Value) -> Parsed {
        parse(&v).unwrap()
    }

    #[test]
    fn sizes_follow_fit() {
        let src = (64, 48);
        let p = parsed(json!({"source": "a.png", "output": "b.png", "width": 32}));
        assert_eq!(target_size(src, &p), ((32, 24), (32, 24)));
        let p = parsed(json!({"source": "a.png", "output": "b.png", "height": 12}));
        assert_eq!(target_size(src, &p), ((16, 12), (16, 12)));
        let p = parsed(json!({"source": "a.png", "output": "b.png", "width": 32, "height": 32}));
        assert_eq!(
            target_size(src, &p),
            ((32, 24), (32, 24)),
            "contain is the default"
        );
        let p = parsed(
            json!({"source": "a.png", "output": "b.png", "width": 32, "height": 32, "fit": "cover"}),
        );
        assert_eq!(target_size(src, &p), ((43, 32), (32, 32)));
        let p = parsed(
            json!({"source": "a.png", "output": "b.png", "width": 10, "height": 30, "fit": "fill"}),
        );
        assert_eq!(target_size(src, &p), ((10, 30), (10, 30)));
        // Never zero.
        let p = parsed(json!({"source": "a.png", "output": "b.png", "width": 1}));
        assert_eq!(target_size((1000, 1), &p), ((1, 1), (1, 1)));
    }

    #[test]
    fn payload_errors_name_the_field() {
        for (bad, field) in [
            (json!({"output": "b.png", "width": 1}), "\"source\""),
            (
                json!({"source": "../x.png", "output": "b.png", "width": 1}),
                "\"source\"",
            ),
            (
                json!({"source": "a/../../x.png", "output": "b.png", "width": 1}),
                "..",
            ),
            (
                json!({"source": "/etc/passwd", "output": "b.png", "width": 1}),
                "absolute",
            ),
            (
                json!({"source": "a.png", "output": "/tmp/b.png", "width": 1}),
                "\"output\"",
            ),
            (
                json!({"source": "a.png", "output": "dir/", "width": 1}),
                "\"output\"",
            ),
            (json!({"source": "a.png", "output": "b.png"}), "\"width\""),
            (
                json!({"source": "a.png", "output": "b.png", "width": 0}),
                "\"width\"",
            ),
            (
                json!({"source": "a.png", "output": "b.png", "height": 16385}),
                "\"height\"",
            ),
            (
                json!({"source": "a.png", "output": "b.gif", "width": 1}),
                "\"format\"",
            ),
            (
                json!({"source": "a.png", "output": "b", "width": 1, "format": "gif"}),
                "\"format\"",
            ),
            (
                json!({"source": "a.png", "output": "b.png", "width": 1, "fit": "crop"}),
                "\"fit\"",
            ),
            (
                json!({"source": "a.png", "output": "b.png", "width": 16384, "height": 16384, "fit": "fill"}),
                "megapixels",
            ),
            (
                json!({"source": "a.png", "output": "b.png", "width": 1, "sauce": 1}),
                "\"sauce\"",
            ),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.contains(field), "{bad}: {err}");
        }
        let p = parsed(json!({"source": "./in/a.PNG", "output": "out/b.JPG", "width": 5}));
        assert_eq!(p.format, Format::Jpeg);
        let p = parsed(json!({"source": "a.png", "output": "b.bin", "width": 5, "format": "webp"}));
        assert_eq!(p.format, Format::Webp);
    }
}
