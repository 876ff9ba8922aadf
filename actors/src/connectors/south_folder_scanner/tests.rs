use std::io::Read as _;

use super::*;
use crate::entities::Audit;

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let (dir, store) = crate::store::temp();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        Fixture { dir, store }
    }

    fn input(&self) -> PathBuf {
        self.dir.path().join("in")
    }

    /// A file last modified `age` ago.
    fn file(&self, name: &str, bytes: &[u8], age: Duration) -> PathBuf {
        let path = self.input().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    fn scanner(&self, compression: bool) -> FolderScanner {
        let settings = json!({"inputFolder": self.input(), "compression": compression});
        FolderScanner::new("s1", &settings, &self.store).unwrap()
    }
}

fn item(settings: Value) -> SouthItem {
    SouthItem {
        id: "i1".into(),
        name: "item one".into(),
        enabled: true,
        settings,
        scan_mode_id: None,
        group_id: None,
        other: Map::new(),
        audit: Audit {
            created_by: String::new(),
            updated_by: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
        },
    }
}

fn names(files: &[ScannedFile]) -> Vec<&str> {
    files.iter().map(|f| f.filename.as_str()).collect()
}

const OLD: Duration = Duration::from_secs(60);

#[test]
fn only_names_matching_the_item_regex_are_scanned() {
    let f = Fixture::new();
    f.file("a.csv", b"1", OLD);
    f.file("b.txt", b"2", OLD);
    f.file("sub/c.csv", b"3", OLD);
    let files = f
        .scanner(false)
        .scan(&item(json!({"regex": "\\.csv$", "minAge": 0})))
        .unwrap();
    assert_eq!(names(&files), vec!["a.csv"]);
    assert_eq!(files[0].bytes, Bytes::from_static(b"1"));
    assert_eq!(files[0].item_id, "i1");
    let recursive = f
        .scanner(false)
        .scan(&item(
            json!({"regex": "csv", "minAge": 0, "recursive": true}),
        ))
        .unwrap();
    assert_eq!(names(&recursive), vec!["a.csv", "sub/c.csv"]);
}

#[test]
fn files_younger_than_min_age_wait() {
    let f = Fixture::new();
    f.file("young.csv", b"", Duration::ZERO);
    f.file("old.csv", b"", OLD);
    let files = f
        .scanner(false)
        .scan(&item(json!({"minAge": 10_000})))
        .unwrap();
    assert_eq!(names(&files), vec!["old.csv"]);
}

#[test]
fn without_preserve_files_done_deletes_them() {
    let f = Fixture::new();
    let path = f.file("a.csv", b"x", OLD);
    let scanner = f.scanner(false);
    let files = scanner
        .scan(&item(json!({"preserveFiles": false})))
        .unwrap();
    scanner.done(&files).unwrap();
    assert!(!path.exists());
}

#[test]
fn preserved_files_are_sent_again_only_once_modified_even_after_a_restart() {
    let f = Fixture::new();
    let path = f.file("a.csv", b"x", OLD);
    let settings = json!({"preserveFiles": true, "minAge": 0});
    let scanner = f.scanner(false);
    let files = scanner.scan(&item(settings.clone())).unwrap();
    assert_eq!(names(&files), vec!["a.csv"]);
    scanner.done(&files).unwrap();
    assert!(path.exists());
    drop(scanner);

    let again = f.scanner(false);
    assert!(again.scan(&item(settings.clone())).unwrap().is_empty());
    f.file("a.csv", b"y", Duration::from_secs(1));
    let files = again.scan(&item(settings.clone())).unwrap();
    assert_eq!(files[0].bytes, Bytes::from_static(b"y"));

    // ignoreModifiedDate sends preserved files at every scan.
    let every_time = json!({"preserveFiles": true, "minAge": 0, "ignoreModifiedDate": true});
    again.done(&files).unwrap();
    assert_eq!(again.scan(&item(every_time)).unwrap().len(), 1);

    FolderScanner::forget(&f.store, "s1").unwrap();
    assert_eq!(f.scanner(false).scan(&item(settings)).unwrap().len(), 1);
}

#[test]
fn compression_gives_a_valid_gzip_named_gz() {
    let f = Fixture::new();
    f.file("a.csv", b"a,b\n1,2\n", OLD);
    let files = f.scanner(true).scan(&item(json!({}))).unwrap();
    assert_eq!(names(&files), vec!["a.csv.gz"]);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&files[0].bytes[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, b"a,b\n1,2\n");
}

#[test]
fn max_files_and_max_size_bound_one_scan() {
    let f = Fixture::new();
    for name in ["a", "b", "c"] {
        f.file(name, &[0; 700 * 1024], OLD);
    }
    let scanner = f.scanner(false);
    assert_eq!(
        scanner.scan(&item(json!({"maxFiles": 2}))).unwrap().len(),
        2
    );
    assert_eq!(scanner.scan(&item(json!({"maxSize": 1}))).unwrap().len(), 1);
}

#[test]
fn an_invalid_regex_names_the_item() {
    let f = Fixture::new();
    let err = f
        .scanner(false)
        .scan(&item(json!({"regex": "("})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("item item one: settings.regex \"(\""), "{err}");
}

#[test]
fn test_connection_reports_the_folder_or_why_not() {
    let f = Fixture::new();
    f.file("a", b"", OLD);
    let result = f.scanner(false).test_connection().unwrap();
    assert_eq!(result["items"][1], json!({"key": "Files", "value": "1"}));
    let missing = FolderScanner::new(
        "s2",
        &json!({"inputFolder": f.dir.path().join("no")}),
        &f.store,
    )
    .unwrap()
    .test_connection()
    .unwrap_err();
    assert!(missing.contains("does not exist"), "{missing}");
}
