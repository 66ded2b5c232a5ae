//! Build step: the text jobq embeds, without what only a reader of the source needs. Each Redis
//! script is `common.lua` plus its preludes plus its own file (`store/scripts.rs`), so their
//! comments were embedded 32 times over: 0.3 MB of the release binary. The copies written to
//! OUT_DIR keep every line (a comment line becomes an empty one, so Redis's error line numbers
//! still match the sources) and lose the comment lines; `server/openapi.json` loses the
//! indentation it is written with, since it is parsed at start-up anyway. No dependency: the
//! Lua has no long strings or block comments (checked below), and JSON whitespace outside
//! strings is the only thing removed.

use std::fs;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let lua_out = Path::new(&out).join("lua");
    fs::create_dir_all(&lua_out).expect("create OUT_DIR/lua");
    println!("cargo:rerun-if-changed=src/store/lua");
    println!("cargo:rerun-if-changed=src/server/openapi.json");
    for entry in fs::read_dir("src/store/lua").expect("read src/store/lua") {
        let path = entry.expect("list src/store/lua").path();
        if path.extension().is_none_or(|e| e != "lua") {
            continue;
        }
        let text = fs::read_to_string(&path).expect("read a Lua script");
        assert!(
            !text.contains("[["),
            "{}: a long string or block comment; build.rs strips comment lines only",
            path.display()
        );
        let stripped: Vec<&str> = text
            .split('\n')
            .map(|l| {
                if l.trim_start().starts_with("--") {
                    ""
                } else {
                    l
                }
            })
            .collect();
        fs::write(lua_out.join(path.file_name().unwrap()), stripped.join("\n"))
            .expect("write a Lua script");
    }
    let doc = fs::read_to_string("src/server/openapi.json").expect("read openapi.json");
    fs::write(Path::new(&out).join("openapi.json"), minify_json(&doc)).expect("write openapi.json");
}

/// `json` without the whitespace between its tokens.
fn minify_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}
