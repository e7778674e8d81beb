//! The browser demo pages that `presign-server --demo` serves beside the
//! API (`upload_examples::demo`), with and without Uppy's bundle.

use serde_json::Value;

#[tokio::test]
async fn demo_pages() {
    let http = reqwest::Client::new();
    // The pages, with a stand-in for Uppy's bundle, and without one.
    let web = tempfile::tempdir().unwrap();
    let dist = upload_examples::demo::uppy_dist(web.path());
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("uppy.min.mjs"), "export const Uppy = 1;\n").unwrap();
    let dist6 = upload_examples::demo::uppy6_dist(web.path());
    std::fs::create_dir_all(&dist6).unwrap();
    std::fs::write(dist6.join("uppy6.js"), "export const Uppy = 6;\n").unwrap();
    let bare = tempfile::tempdir().unwrap();
    let mut bases = Vec::new();
    for dir in [web.path(), bare.path()] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = upload_examples::demo::routes(dir);
        tokio::spawn(async move { axum::serve(listener, app).await });
        bases.push(format!("http://{addr}"));
    }
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (status, ct, body) = get(format!("{}/", bases[0])).await;
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains(r#"<script type="module" src="/demo.js">"#));
    let (status, ct, body) = get(format!("{}/demo.js", bases[0])).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(body.contains("/multipart/complete") && body.contains("/multipart/parts"));
    let (status, _, body) = get(format!("{}/uppy.html", bases[0])).await;
    assert_eq!(status, 200);
    assert!(body.contains("/vendor/uppy/uppy.min.mjs"));
    let (status, _, body) = get(format!("{}/vendor/uppy/uppy.min.mjs", bases[0])).await;
    assert_eq!((status, body.as_str()), (200, "export const Uppy = 1;\n"));
    let (status, _, body) = get(format!("{}/uppy6.html", bases[0])).await;
    assert_eq!(status, 200);
    assert!(body.contains("/vendor/uppy6/uppy6.js") && body.contains("signRequest"));
    assert!(body.contains(r#"fetch("/s3/sign""#));
    let (status, _, body) = get(format!("{}/vendor/uppy6/uppy6.js", bases[0])).await;
    assert_eq!((status, body.as_str()), (200, "export const Uppy = 6;\n"));
    let (status, ct, body) = get(format!("{}/vendor/uppy6/uppy6.js", bases[1])).await;
    assert_eq!((status, ct.as_str()), (404, "application/json"));
    let err: Value = serde_json::from_str(&body).unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("npm ci && npm run build"),
        "{err}"
    );
    let (status, ct, body) = get(format!("{}/vendor/uppy/uppy.min.mjs", bases[1])).await;
    assert_eq!((status, ct.as_str()), (404, "application/json"));
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "not_found");
    assert!(
        err["message"].as_str().unwrap().contains("run `npm ci` in"),
        "{err}"
    );
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("--web-dir") && message.contains("UPLOAD_DEMO_WEB_DIR"),
        "the error says how to point a copied binary at the bundle: {err}"
    );
}
