use super::*;

/// Directory of claim-check blobs in a store.
pub const BLOBS_DIR: &str = "blobs";

/// Directory of blobs being written, under [`BLOBS_DIR`].
pub const BLOBS_TMP_DIR: &str = "tmp";

/// A hash as 64 lowercase hex digits (a blob's file name).
pub fn hash_hex(h: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses 64 hex digits (either case) into a hash.
pub fn parse_hash_hex(name: &str) -> Option<[u8; 32]> {
    let b = name.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// Path of the blob with hash `h` in the store at `store`.
pub fn blob_path(store: &Path, h: &[u8; 32]) -> PathBuf {
    let hex = hash_hex(h);
    store.join(BLOBS_DIR).join(&hex[..2]).join(hex)
}

/// Checks the blob file at `path` against a reference: a regular file (not
/// followed if a symlink) of `length` bytes whose BLAKE3 hash is `hash`. The
/// file is hashed in 1 MiB chunks (bounded memory whatever its size).
pub fn check_blob_file(path: &Path, hash: &[u8; 32], length: u64) -> BlobStatus {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return BlobStatus::Missing,
        Err(e) => return BlobStatus::Unreadable(e.to_string()),
    };
    if !meta.is_file() {
        return BlobStatus::NotAFile;
    }
    if meta.len() != length {
        return BlobStatus::WrongLength(meta.len());
    }
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return BlobStatus::Missing,
        Err(e) => return BlobStatus::Unreadable(e.to_string()),
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return BlobStatus::Unreadable(e.to_string()),
        };
        total += n as u64;
        BYTES_READ.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if total > length {
            return BlobStatus::WrongLength(total);
        }
        hasher.update(&buf[..n]);
    }
    if total != length {
        return BlobStatus::WrongLength(total);
    }
    let got: [u8; 32] = *hasher.finalize().as_bytes();
    if &got != hash {
        return BlobStatus::WrongHash(got);
    }
    BlobStatus::Valid
}

/// The blob files of the store at `store` (`blobs/<2 hex>/<64 hex>`), with
/// their hashes; files of other names and `blobs/tmp/` are not listed.
pub fn list_blob_files(store: &Path) -> io::Result<Vec<([u8; 32], PathBuf)>> {
    let dir = store.join(BLOBS_DIR);
    let subs = match list_dir(&dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (sub, kind) in subs {
        if kind != Kind::Dir || sub.len() != 2 || sub == BLOBS_TMP_DIR {
            continue;
        }
        let sdir = dir.join(&sub);
        let files = match list_dir(&sdir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for (name, _) in files {
            if let Some(h) = parse_hash_hex(&name).filter(|_| name.starts_with(&sub)) {
                out.push((h, sdir.join(name)));
            }
        }
    }
    Ok(out)
}

/// Checks the claim-check references of every segment in `info` against the
/// blob files of the store, and finds the blobs no record refers to.
///
/// Each distinct reference is checked once ([`check_blob_file`]); a bad one
/// is a problem on the blob file naming the segment and byte position of the
/// first record that refers to it. A blob nobody refers to is an orphan: a
/// problem with [`Problem::warning`] set (nothing is lost; the next open of
/// the store, or `segment-tool repair`, removes it).
pub fn check_blobs(info: &StoreInfo) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for seg in info
        .streams
        .iter()
        .flat_map(|s| s.buckets.iter())
        .flat_map(|b| b.segments.iter())
    {
        for r in &seg.blob_refs {
            if !seen.insert(r.hash) {
                continue;
            }
            let path = blob_path(&info.path, &r.hash);
            let status = check_blob_file(&path, &r.hash, r.length);
            if status != BlobStatus::Valid {
                let want = match status {
                    BlobStatus::WrongLength(_) => format!(", {} expected", r.length),
                    _ => String::new(),
                };
                problems.push(Problem::file(
                    &path,
                    format!(
                        "{status}{want}; referred to by offset {} in {} at byte {}",
                        r.offset,
                        seg.path.display(),
                        r.position
                    ),
                ));
            }
        }
    }
    match list_blob_files(&info.path) {
        Ok(files) => {
            for (h, path) in files {
                if !seen.contains(&h) {
                    let mut p = Problem::file(
                        &path,
                        "orphan blob: no message refers to it (warning: nothing is lost; \
                         the next open or `repair` removes it)",
                    );
                    p.warning = true;
                    problems.push(p);
                }
            }
        }
        Err(e) => problems.push(Problem::file(
            &info.path.join(BLOBS_DIR),
            format!("cannot list: {e}"),
        )),
    }
    problems
}
