//! `kvchaos kv dump|verify|clean|restore` against the mock KV's REST door on 127.0.0.1:0, R2
//! as `object_store`'s in-memory store, D1 as a wiremock server. This file holds the shared
//! helpers; the tests are in `kv/`.

mod clean;
mod dump;
mod restore;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kvchaos::exit::Exit;
use kvchaos::kv::api::{Client, Namespace};
use kvchaos::kv::record::{Manifest, Record, parse_dump};
use kvchaos::kv::store::ObjectStores;
use kvchaos::kv::{KvEnv, args};
use kvchaos::mockkv::{self, Limits, MockKv, MockKvConfig, VirtualClock};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) const TOKEN: &str = "tok-Secret-4242";

pub(crate) struct Mock {
    pub(crate) kv: MockKv,
    pub(crate) base: String,
    cancel: CancellationToken,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(crate) async fn mock(limits: Limits) -> Mock {
    let config = MockKvConfig {
        limits,
        same_key_write_limit: false,
        api_token: Some(TOKEN.into()),
        ..MockKvConfig::default()
    };
    let kv = MockKv::new(config, VirtualClock::real_time(1.0));
    let listener = mockkv::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(mockkv::serve(listener, kv.clone(), cancel.clone()));
    Mock {
        kv,
        base: format!("http://{addr}/client/v4"),
        cancel,
    }
}

impl Mock {
    pub(crate) async fn client(&self) -> Client {
        Client::new(
            &self.base,
            TOKEN.into(),
            "100000/1s".parse().unwrap(),
            Duration::ZERO,
        )
        .await
        .expect("client")
    }

    /// Create `ns` and write `pairs` (Cloudflare bulk-write shape) into it.
    pub(crate) async fn seed(&self, ns: &str, pairs: Vec<Value>) {
        self.kv.create_namespace(ns);
        let mut c = self.client().await;
        for chunk in pairs.chunks(10_000) {
            Namespace::new(&mut c, "acc", ns)
                .bulk_put(Value::Array(chunk.to_vec()))
                .await
                .expect("seed");
        }
    }

    pub(crate) async fn delete(&self, ns: &str, keys: &[&str]) {
        let mut c = self.client().await;
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        Namespace::new(&mut c, "acc", ns)
            .bulk_delete(&keys)
            .await
            .expect("delete");
    }

    /// Keys in `ns` (at most one list page).
    pub(crate) async fn live(&self, ns: &str) -> usize {
        let mut c = self.client().await;
        Namespace::new(&mut c, "acc", ns)
            .list("", None)
            .await
            .expect("list")
            .0
            .len()
    }

    pub(crate) fn ns_args(&self, ns: &str) -> Vec<String> {
        [
            "--account-id",
            "acc",
            "--namespace-id",
            ns,
            "--api-base",
            &self.base,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

pub(crate) struct Ran {
    pub(crate) exit: Exit,
    pub(crate) out: String,
    pub(crate) err: String,
}

pub(crate) async fn kv(argv: &[String], env: &KvEnv) -> Ran {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = args::parse(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = kvchaos::kv::run(args, env, &mut out, &mut err).await;
    let ran = Ran {
        exit,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    };
    assert!(
        !ran.out.contains(TOKEN) && !ran.err.contains(TOKEN),
        "the token leaked: {}{}",
        ran.out,
        ran.err
    );
    ran
}

pub(crate) fn memory_env() -> KvEnv {
    KvEnv::with_token(
        TOKEN,
        ObjectStores::Fixed(Arc::new(object_store::memory::InMemory::new())),
    )
}

pub(crate) fn argv(parts: &[&str], more: Vec<String>) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).chain(more).collect()
}

pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}

pub(crate) fn text_pairs(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"key": format!("{prefix}{i:05}"), "value": format!("v{i}")}))
        .collect()
}

pub(crate) fn read_dump(p: &Path) -> Vec<Record> {
    parse_dump(&std::fs::read(p).expect("dump"), "dump").expect("dump lines")
}

pub(crate) fn manifest(p: &Path) -> Manifest {
    let mut m = p.as_os_str().to_owned();
    m.push(".manifest.json");
    serde_json::from_slice(&std::fs::read(m).expect("manifest")).expect("manifest JSON")
}

pub(crate) fn sqlite_with(dir: &Path, keys: &[String]) -> String {
    let p = dir.join("d1.sqlite");
    let _ = std::fs::remove_file(&p);
    let db = rusqlite::Connection::open(&p).expect("sqlite");
    db.execute("CREATE TABLE legacy(key TEXT)", [])
        .expect("create");
    for k in keys {
        db.execute("INSERT INTO legacy VALUES (?1)", [k])
            .expect("insert");
    }
    path(&p)
}
