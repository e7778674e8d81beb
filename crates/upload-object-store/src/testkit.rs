//! Test support for Azure Blob Storage through Azurite (feature
//! `testkit`): the development account, the endpoint the test script
//! exports, container creation (which `object_store` cannot do) and a
//! ready [`ObjectStoreStorage`]. Shared by this crate's conformance tests
//! and `upload-server`'s SAS tests.
//!
//! The helpers panic with a message when Azurite is absent or refuses: a
//! test that asked for Azurite fails, it never skips.

use crate::ObjectStoreStorage;

/// Azurite's well-known development account name (public, in
/// Microsoft's Azurite documentation).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// Azurite's well-known development account key (public, base64).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The variable `scripts/test.sh` exports with the account URL.
pub const AZURITE_ENDPOINT_VAR: &str = "UPLOAD_SDK_AZURITE_BLOB_ENDPOINT";

/// The account URL, `http://127.0.0.1:PORT/devstoreaccount1`, from
/// [`AZURITE_ENDPOINT_VAR`].
///
/// # Panics
/// When the variable is unset (the tests were not started through
/// `scripts/test.sh`, which starts Azurite).
pub fn azurite_endpoint() -> String {
    std::env::var(AZURITE_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "{AZURITE_ENDPOINT_VAR} is unset: run these tests through scripts/test.sh, \
             which starts Azurite (scripts/azurite.sh)"
        )
    })
}

/// Creates `container` on Azurite (Create Container, signed with Shared
/// Key, API version 2021-08-06); one that exists already is fine.
///
/// # Panics
/// When Azurite does not answer, or answers other than 201 or 409.
pub async fn create_azurite_container(container: &str) {
    use base64::Engine as _;
    use hmac::Mac as _;
    let url = format!("{}/{container}?restype=container", azurite_endpoint());
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        &now.weekday().to_string()[..3],
        now.day(),
        &now.month().to_string()[..3],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(AZURITE_KEY)
        .expect("the development key is base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(to_sign.as_bytes());
    let sig = b64.encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .put(&url)
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("Content-Length", "0")
        .header(
            "Authorization",
            format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("Azurite does not answer at {url}: {e}"));
    let status = resp.status().as_u16();
    assert!(
        status == 201 || status == 409,
        "Create Container {container}: {status} {}",
        resp.text().await.unwrap_or_default()
    );
}

/// `container` on Azurite (created when missing) as an
/// [`ObjectStoreStorage`] named `container`, over plain HTTP.
///
/// # Panics
/// As [`create_azurite_container`], or when `object_store` refuses the
/// configuration.
pub async fn azurite_storage(container: &str) -> ObjectStoreStorage {
    create_azurite_container(container).await;
    let azure = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_container_name(container)
        .with_endpoint(azurite_endpoint())
        .with_allow_http(true)
        .build()
        .expect("an Azure store on Azurite");
    ObjectStoreStorage::azure(container, azure).expect("a valid container name")
}
