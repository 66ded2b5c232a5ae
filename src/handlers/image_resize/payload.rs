//! The `image_resize` payload: its serde shape, the checks a submission must pass (paths
//! relative to IMAGE_DIR without `..`, dimensions, fit, format), and its published schema.

use serde::Deserialize;
use serde_json::{json, Number, Value};
use std::path::{Component, Path, PathBuf};

use super::{MAX_DIMENSION, MAX_PIXELS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "lowercase",
    expecting = "\"contain\", \"cover\" or \"fill\""
)]
pub(super) enum Fit {
    Contain,
    Cover,
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Png,
    Jpeg,
    Webp,
}

impl Format {
    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Webp => "webp",
        }
    }
    pub(super) fn from_name(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parsed {
    pub(super) source: PathBuf,
    pub(super) output: PathBuf,
    pub(super) width: Option<u32>,
    pub(super) height: Option<u32>,
    pub(super) fit: Fit,
    pub(super) format: Format,
}

/// The payload as sent; [`parse`] checks what serde cannot (required fields, paths, ranges).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Payload {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    width: Option<Number>,
    #[serde(default)]
    height: Option<Number>,
    #[serde(default)]
    fit: Option<Fit>,
    #[serde(default)]
    format: Option<String>,
}

/// A path inside IMAGE_DIR: relative, without `..`, not empty.
pub(super) fn relative_path(value: Option<String>, field: &str) -> Result<PathBuf, String> {
    let s =
        value.ok_or_else(|| format!("\"{field}\" is required: a path relative to IMAGE_DIR"))?;
    check_relative(&s).map_err(|e| format!("\"{field}\": {s:?} {e}"))
}

pub(super) fn check_relative(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() || s.len() > 1024 || s.contains('\0') {
        return Err("must be a path of 1-1024 bytes".into());
    }
    let path = Path::new(s);
    let mut normal = 0;
    for c in path.components() {
        match c {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("must not contain \"..\": paths stay inside IMAGE_DIR".into())
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to IMAGE_DIR, not absolute".into())
            }
        }
    }
    if normal == 0 || s.ends_with('/') {
        return Err("must name a file".into());
    }
    Ok(path.to_path_buf())
}

pub(super) fn dimension(value: Option<Number>, field: &str) -> Result<Option<u32>, String> {
    value
        .map(|n| {
            n.as_u64()
                .filter(|n| (1..=u64::from(MAX_DIMENSION)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| format!("\"{field}\": {n} must be an integer 1-{MAX_DIMENSION}"))
        })
        .transpose()
}

pub(super) fn parse(p: &Value) -> Result<Parsed, String> {
    let p: Payload = crate::handlers::payload::decode(
        p,
        "the payload must be an object like {\"source\": \"in.png\", \"output\": \"out.png\", \"width\": 320}",
    )?;
    let source = relative_path(p.source, "source")?;
    let output = relative_path(p.output, "output")?;
    let width = dimension(p.width, "width")?;
    let height = dimension(p.height, "height")?;
    if width.is_none() && height.is_none() {
        return Err("\"width\" or \"height\" (or both) is required".into());
    }
    let fit = p.fit.unwrap_or(Fit::Contain);
    let format = match p.format {
        None => output
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_name)
            .ok_or_else(|| {
                format!(
                    "\"format\" is needed: the output {:?} does not end in .png, .jpg, .jpeg or .webp",
                    output.display().to_string()
                )
            })?,
        Some(s) => Format::from_name(&s)
            .filter(|_| s != "jpg")
            .ok_or_else(|| format!("\"format\": {s:?} must be \"png\", \"jpeg\" or \"webp\""))?,
    };
    if let (Some(w), Some(h)) = (width, height) {
        if fit != Fit::Contain && u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(format!(
                "\"width\" × \"height\" is {} pixels; at most {} megapixels",
                u64::from(w) * u64::from(h),
                MAX_PIXELS / 1_000_000
            ));
        }
    }
    Ok(Parsed {
        source,
        output,
        width,
        height,
        fit,
        format,
    })
}

/// The payload's schema for the API document, as `parse` checks it. Not expressed: paths
/// without `..` (and at most 1024 bytes), the output's extension when `format` is absent, and
/// the pixel limit of `cover` and `fill`.
pub(super) fn payload_schema() -> Value {
    let path = |what: &str| {
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": 1024,
            "pattern": "^[^/]([\\s\\S]*[^/])?$",
            "description": format!("{what}: a file path relative to IMAGE_DIR, without `..`.")
        })
    };
    let dimension = json!({"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION});
    let mut optional_dimension = dimension.clone();
    optional_dimension["nullable"] = json!(true);
    json!({
        "type": "object",
        "description": "Resizes an image in IMAGE_DIR. With one dimension the aspect ratio is kept.",
        "additionalProperties": false,
        "required": ["source", "output"],
        "properties": {
            "source": path("The image to read (PNG, JPEG or WebP)"),
            "output": path("Where to write"),
            "width": optional_dimension,
            "height": optional_dimension,
            "fit": {
                "type": "string",
                "nullable": true,
                // OpenAPI 3.0.3: `nullable` does not add null to an `enum`; it must be listed.
                "enum": ["contain", "cover", "fill", null],
                "description": "With both dimensions: contain (default), cover or fill."
            },
            "format": {
                "type": "string",
                "nullable": true,
                "pattern": "^([Pp][Nn][Gg]|[Jj][Pp][Ee]?[Gg]|[Ww][Ee][Bb][Pp])$",
                "description": "png, jpeg or webp; needed unless the output ends in .png, .jpg, .jpeg or .webp."
            }
        },
        "anyOf": [
            {"required": ["width"], "properties": {"width": dimension}},
            {"required": ["height"], "properties": {"height": dimension}}
        ],
        "example": {"source": "in.png", "output": "out.png", "width": 320}
    })
}
