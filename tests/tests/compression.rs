//! Compressed responses as Locust's HttpUser (requests) meets them: `accept-encoding: gzip,
//! deflate` sent by default, bodies decoded for checks, the size column the decoded size, and a
//! body that decodes past `max_body` failing its request. The real binary against Debian's
//! nginx with `gzip on`, held against nginx's access log.

use hatchery_e2e::nginx::{page, Nginx};
use hatchery_e2e::short::{one_second, stats};
use hatchery_e2e::{csv_column, Finished, TempDir};

async fn run(dir: &TempDir, plan: &str, host: &str) -> Finished {
    one_second(dir, plan, host, 1).command().run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_decoded_for_checks_and_counted_at_their_decoded_size() {
    let page = page();
    let nginx = Nginx::start(
        &[("big.txt", &page)],
        "location = /old { return 302 /big.txt; }",
    )
    .await;
    let dir = TempDir::new("gzip");
    let plan = "users:
  - name: U
    wait: {constant: 20ms}
    tasks:
      - sequence:
          - {get: /big.txt, name: read, check: {body_contains: the needle at the end}}
          - {get: /big.txt, name: unread}
          - {get: /old, name: moved, check: {body_contains: the needle at the end}}
          - {get: /big.txt, name: identity, headers: {accept-encoding: identity}}
";
    let out = run(&dir, plan, &nginx.url()).await;
    let stats = stats(&dir);
    let count = |name| csv_column(&stats, name, "Request Count");
    assert!(count("read") > 1, "{}", out.stderr());
    for name in ["read", "unread", "moved", "identity"] {
        assert_eq!(csv_column(&stats, name, "Failure Count"), 0, "{name}");
        assert_eq!(
            csv_column(&stats, name, "Average Content Size"),
            page.len() as u64,
            "{name}: the decoded size, as Locust reports len(response.content)"
        );
    }
    let pages = nginx.access_to("/big.txt");
    assert_eq!(
        pages.len() as u64,
        count("read") + count("unread") + count("moved") + count("identity")
    );
    assert_eq!(nginx.access_to("/old").len() as u64, count("moved"));
    let (gzipped, plain): (Vec<_>, Vec<_>) = pages
        .iter()
        .partition(|a| a.accept_encoding == "gzip, deflate");
    assert_eq!(plain.len() as u64, count("identity"));
    assert!(plain.iter().all(|a| a.accept_encoding == "identity"));
    assert!(plain.iter().all(|a| a.body_bytes_sent == page.len() as u64));
    assert!(
        gzipped
            .iter()
            .all(|a| a.body_bytes_sent < page.len() as u64 / 5),
        "{gzipped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_decodes_past_max_body_fails_its_request_and_is_never_held() {
    // 8 MiB of zeros: about 8 KiB on the wire.
    let zeros = vec![0u8; 8 << 20];
    let nginx = Nginx::start(&[("zeros.bin", &zeros)], "").await;
    let dir = TempDir::new("bomb");
    let plan = "max_body: 64KiB
users:
  - name: U
    wait: {constant: 20ms}
    tasks:
      - sequence:
          - {get: /zeros.bin, name: read, check: {body_contains: x}}
          - {get: /zeros.bin, name: unread}
";
    let out = run(&dir, plan, &nginx.url()).await;
    let stats = stats(&dir);
    let reads = csv_column(&stats, "read", "Request Count");
    assert!(reads > 0, "{}", out.stderr());
    assert_eq!(csv_column(&stats, "read", "Failure Count"), reads);
    let failures = std::fs::read_to_string(dir.path().join("run_failures.csv")).unwrap();
    assert!(
        failures.contains("response body larger than 65536 bytes (max_body)"),
        "{failures}"
    );
    assert_eq!(csv_column(&stats, "unread", "Failure Count"), 0);
    assert_eq!(
        csv_column(&stats, "unread", "Average Content Size"),
        zeros.len() as u64
    );
    let sent = nginx.access_to("/zeros.bin");
    assert_eq!(
        sent.len() as u64,
        reads + csv_column(&stats, "unread", "Request Count")
    );
    assert!(
        sent.iter().all(|a| a.body_bytes_sent < 64 << 10),
        "{sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_reads_a_gzip_body_decoded_and_the_stats_count_its_decoded_size() {
    let page = page();
    let nginx = Nginx::start(&[("big.txt", &page)], "").await;
    let dir = TempDir::new("script-gzip");
    let plan = format!(
        r#"users:
  - name: U
    wait: {{constant: 20ms}}
    script: |
      function read(user)
        local r = user.http:get("/big.txt", {{name = "read"}})
        if #r.body ~= {len} or not string.find(r.body, "the needle at the end", 1, true) then
          r:failure("a body of " .. #r.body .. " bytes")
        end
      end
    tasks:
      - {{call: read}}
"#,
        len = page.len()
    );
    let out = run(&dir, &plan, &nginx.url()).await;
    let stats = stats(&dir);
    let count = csv_column(&stats, "read", "Request Count");
    assert!(count > 1, "{}", out.stderr());
    assert_eq!(csv_column(&stats, "read", "Failure Count"), 0);
    assert_eq!(
        csv_column(&stats, "read", "Average Content Size"),
        page.len() as u64
    );
    let pages = nginx.access_to("/big.txt");
    assert_eq!(pages.len() as u64, count);
    assert!(
        pages
            .iter()
            .all(|a| a.accept_encoding == "gzip, deflate"
                && a.body_bytes_sent < page.len() as u64 / 5),
        "{pages:?}"
    );
}
