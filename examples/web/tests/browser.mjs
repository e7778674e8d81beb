// Browser tests of the demo pages, in headless Debian Chromium driven by
// playwright-core (no browser download). scripts/browser-tests.sh starts
// the demo (scripts/demo.sh: moto, clamd, worker, presign-server --demo)
// and runs this with the addresses in the environment:
//
//   DEMO_URL               the presign server with the pages
//   DEMO_S3_ENDPOINT       moto (read back objects, change the bucket's CORS)
//   DEMO_UPLOADS_BUCKET    the uploads bucket
//   ARTIFACTS              where screenshots go
//   CHROMIUM               the browser (default /usr/bin/chromium)
//
// Each test drives a page as a person would (file input, toggle, reload)
// and checks what reached storage: the object's bytes (SHA-256 against the
// file), the part requests the browser sent (how many overlapped, which
// part numbers), what the page says. A failure exits 1 with the page's own
// status text, so a missing CORS rule or unexposed ETag reads as such.

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, utimesSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "../../..");
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/browser-tests.sh)`);
  return v;
};
const DEMO = env("DEMO_URL");
const S3 = env("DEMO_S3_ENDPOINT");
const BUCKET = env("DEMO_UPLOADS_BUCKET");
const ARTIFACTS = env("ARTIFACTS");
const MiB = 1024 * 1024;

mkdirSync(ARTIFACTS, { recursive: true });
const work = join(ARTIFACTS, "files");
mkdirSync(work, { recursive: true });

// --- test files -------------------------------------------------------------

/**
 * A PNG of random RGB pixels, padded with a tEXt chunk to exactly `size`
 * bytes (the pixels are incompressible, so they must fit below it).
 */
function noisePng(width, height, size) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, "latin1");
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const stride = width * 3 + 1;
  const raw = randomBytes(stride * height);
  for (let y = 0; y < height; y++) raw[y * stride] = 0; // filter: none
  const head = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr)];
  const tail = [chunk("IDAT", deflateSync(raw, { level: 0 })), chunk("IEND", Buffer.alloc(0))];
  const used = [...head, ...tail].reduce((n, b) => n + b.length, 0) + 12;
  if (used + 8 > size) throw new Error(`${width}x${height} pixels do not fit in ${size} bytes`);
  const text = Buffer.alloc(size - used, 0x20);
  text.write("Comment\0", "latin1");
  return Buffer.concat([...head, chunk("tEXt", text), ...tail]);
}

const files = {
  put: join(work, "put-bythewater.jpg"),
  post: join(work, "post-colorfulcups.jpg"),
  polled: join(work, "polled-bythewater.jpg"),
  refused: join(work, "drawing.svg"),
  big: join(work, "big-noise-40mib.png"),
  resume: join(work, "resume-noise-40mib.png"),
  uppyBig: join(work, "uppy-noise-40mib.png"),
  uppySmall: join(work, "uppy-kleiber.jpg"),
  uppy6Big: join(work, "uppy6-noise-17mib.png"),
  uppy6Small: join(work, "uppy6-kleiber.jpg"),
  retried: join(work, "retried-noise-17mib.png"),
  twinA: join(work, "a/twin-noise-40mib.png"),
  twinB: join(work, "b/twin-noise-40mib.png"),
  noEtag: join(work, "no-etag-noise-17mib.png"),
  untyped: join(work, "photo-without-extension"),
};
copyFileSync(join(repo, "samples/photos/derived_bythewater_orient6.jpg"), files.put);
copyFileSync(join(repo, "samples/photos/photo_colorfulcups_2560x1600_gps.jpg"), files.post);
copyFileSync(join(repo, "samples/photos/derived_bythewater_orient6.jpg"), files.polled);
copyFileSync(join(repo, "samples/photos/derived_kleiber_3840x2160_q90_420.jpg"), files.uppySmall);
copyFileSync(join(repo, "samples/photos/derived_kleiber_3840x2160_q90_420.jpg"), files.uppy6Small);
copyFileSync(join(repo, "samples/photos/derived_bythewater_orient6.jpg"), files.untyped);
writeFileSync(files.refused, '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
// Exactly 40 MiB (3600 x 3800 RGB, 41.0 MB of pixels): 5 parts of 8 MiB.
for (const f of [files.big, files.resume, files.uppyBig]) writeFileSync(f, noisePng(3600, 3800, 40 * MiB));
// 17 MiB: 3 parts (8 + 8 + 1 MiB), just over the 16 MiB threshold.
writeFileSync(files.retried, noisePng(2000, 2900, 17 * MiB));
writeFileSync(files.noEtag, noisePng(2000, 2900, 17 * MiB));
writeFileSync(files.uppy6Big, noisePng(2000, 2900, 17 * MiB));
// Two different files with one name, size and modification time.
for (const f of [files.twinA, files.twinB]) {
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(f, noisePng(3600, 3800, 40 * MiB));
  utimesSync(f, new Date("2026-01-02T03:04:05Z"), new Date("2026-01-02T03:04:05Z"));
}
const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

// --- helpers ----------------------------------------------------------------

const results = [];
async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

/** Distinct part numbers, ascending, as JSON: "[1,2,3]". */
const partSet = (numbers) => JSON.stringify([...new Set(numbers)].sort((a, b) => a - b));

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/**
 * The object at `key` in the uploads bucket. moto checks no signature, but
 * refuses anonymous reads of private objects: any Authorization header
 * will do.
 */
async function stored(key) {
  const res = await fetch(`${S3}/${BUCKET}/${key.split("/").map(encodeURIComponent).join("/")}`, {
    headers: {
      authorization:
        "AWS4-HMAC-SHA256 Credential=demo/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
    },
  });
  assert(res.ok, `GET ${key} from storage: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

async function assertStoredBytes(key, path) {
  const want = readFileSync(path);
  const got = await stored(key);
  assert(got.length === want.length, `${key}: ${got.length} bytes stored, the file has ${want.length}`);
  assert(sha256(got) === sha256(want), `${key}: stored bytes differ from the file (SHA-256)`);
}

/**
 * Waits for the upload row of `name` to reach a final state and returns
 * its data attributes and texts; throws with the page's message when the
 * state is not `want`.
 */
async function finished(page, name, want, timeout = 240_000) {
  const row = page.locator(`li.upload[data-name="${name}"]`).first();
  await row.waitFor({ timeout: 30_000 });
  await page.waitForFunction(
    (n) => {
      const el = document.querySelector(`li.upload[data-name="${n}"]`);
      return el && ["done", "rejected", "infected", "error"].includes(el.dataset.state);
    },
    name,
    { timeout },
  );
  const info = await row.evaluate((el) => ({
    ...el.dataset,
    status: el.querySelector(".status")?.textContent ?? "",
    detail: el.querySelector(".detail")?.textContent ?? "",
    thumbWidth: el.querySelector(".thumb img")?.naturalWidth ?? 0,
  }));
  assert(info.state === want, `${name}: expected ${want}, the page says ${info.state}: ${info.status}`);
  return info;
}

/** Whether a URL is an UploadPart URL (partNumber and uploadId). */
const isPartUrl = (url) => url.searchParams.has("uploadId") && url.searchParams.has("partNumber");

/** The part number of an UploadPart request. */
const partNumber = (request) => Number(new URL(request.url()).searchParams.get("partNumber"));

/** Records the part uploads (PUTs with an uploadId) a page sends. */
function watchParts(page) {
  const log = { sent: [], inFlight: 0, maxInFlight: 0 };
  const isPart = (r) => r.method() === "PUT" && isPartUrl(new URL(r.url()));
  page.on("request", (r) => {
    if (!isPart(r)) return;
    log.sent.push(partNumber(r));
    log.inFlight++;
    log.maxInFlight = Math.max(log.maxInFlight, log.inFlight);
  });
  const end = (r) => {
    if (isPart(r)) log.inFlight--;
  };
  // A part is done for the page once its answer (and ETag) arrives.
  page.on("response", (res) => end(res.request()));
  page.on("requestfailed", end);
  return log;
}

/** Puts a CORS configuration on the uploads bucket (moto: unsigned). */
async function putCors(exposeEtag) {
  // As upload-setup sets it (upload_core::cors::CorsConfig), or without ETag.
  const expose = (exposeEtag ? ["ETag", "Location", "x-amz-version-id"] : ["Location"])
    .map((h) => `<ExposeHeader>${h}</ExposeHeader>`)
    .join("");
  const xml =
    `<CORSConfiguration><CORSRule><AllowedOrigin>${DEMO}</AllowedOrigin>` +
    "<AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>" +
    "<AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>" +
    `<AllowedHeader>*</AllowedHeader>${expose}<MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>`;
  const res = await fetch(`${S3}/${BUCKET}?cors`, {
    method: "PUT",
    headers: { "content-md5": createHash("md5").update(xml).digest("base64") },
    body: xml,
  });
  assert(res.ok, `PutBucketCors: HTTP ${res.status} ${await res.text()}`);
}

// --- the tests --------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
const context = await browser.newContext({ viewport: { width: 1100, height: 1400 } });
const page = await context.newPage();
page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
await page.goto(DEMO);
await page.locator("#config").filter({ hasText: "Multipart above" }).waitFor();

await test("a small JPEG by presigned PUT, thumbnail shown", async () => {
  await page.setInputFiles("#files", files.put);
  const r = await finished(page, "put-bythewater.jpg", "done");
  assert(r.kind === "put", `kind ${r.kind}`);
  assert(r.thumbWidth > 0 && r.thumbWidth <= 256, `thumbnail width ${r.thumbWidth}`);
  assert(/thumb 160×256/.test(r.detail), `variants: ${r.detail}`);
  await assertStoredBytes(r.key, files.put);
});

await test("a JPEG by presigned POST (the toggle)", async () => {
  await page.check("input[name=form][value=post]");
  await page.setInputFiles("#files", files.post);
  const r = await finished(page, "post-colorfulcups.jpg", "done");
  assert(r.kind === "post", `kind ${r.kind}`);
  assert(r.thumbWidth > 0, "no thumbnail");
  await assertStoredBytes(r.key, files.post);
  await page.check("input[name=form][value=put]");
});

await test("a server error while polling the manifest does not fail the upload", async () => {
  let refused = 0;
  await page.route(
    (url) => url.pathname === "/uploads/status",
    (route) => {
      if (refused++ > 0) return route.continue();
      route.fulfill({
        status: 503,
        contentType: "application/json",
        body: JSON.stringify({ error: "storage_unavailable", message: "storage is unavailable (transient)" }),
      });
    },
  );
  try {
    await page.setInputFiles("#files", files.polled);
    const r = await finished(page, "polled-bythewater.jpg", "done");
    assert(refused >= 2, `status asked ${refused} times`);
    assert(r.thumbWidth > 0, "no thumbnail");
  } finally {
    await page.unrouteAll({ behavior: "ignoreErrors" });
  }
});

await test("a disallowed type is refused with a clear message", async () => {
  await page.setInputFiles("#files", files.refused);
  const r = await finished(page, "drawing.svg", "error", 30_000);
  assert(
    r.status.includes("Refused by the server") && r.status.includes('"image/svg+xml" is not allowed'),
    `message: ${r.status}`,
  );
});

await test("a file the browser gives no type is declared by its magic bytes", async () => {
  await page.setInputFiles("#files", files.untyped);
  const r = await finished(page, "photo-without-extension", "done");
  assert(r.kind === "put" && r.key.endsWith(".jpg"), `kind ${r.kind}, key ${r.key}`);
  await assertStoredBytes(r.key, files.untyped);
});

await test("40 MiB by multipart through our page: parallel parts, exact bytes", async () => {
  const parts = watchParts(page);
  await page.setInputFiles("#files", files.big);
  const r = await finished(page, "big-noise-40mib.png", "done");
  assert(r.kind === "multipart" && r.parts === "5", `kind ${r.kind}, ${r.parts} parts`);
  assert(partSet(parts.sent) === "[1,2,3,4,5]", `part requests: ${parts.sent}`);
  assert(parts.maxInFlight >= 2, `at most ${parts.maxInFlight} part request in flight: not parallel`);
  console.log(`     parts in flight at once: up to ${parts.maxInFlight}`);
  assert(r.thumbWidth > 0, "no thumbnail");
  await assertStoredBytes(r.key, files.big);
});

await test("a part refused as expired (403) is signed again, a 503 is retried", async () => {
  const attempts = new Map();
  await page.route(
    isPartUrl,
    (route) => {
      if (route.request().method() !== "PUT") return route.continue();
      const n = partNumber(route.request());
      const k = (attempts.get(n) ?? 0) + 1;
      attempts.set(n, k);
      const cors = { "access-control-allow-origin": DEMO, "access-control-expose-headers": "ETag" };
      if (k === 1 && n === 2) {
        route.fulfill({
          status: 403,
          headers: { ...cors, "content-type": "application/xml" },
          body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        });
      } else if (k === 1 && n === 3) {
        route.fulfill({ status: 503, headers: { ...cors, "content-type": "application/xml" }, body: "<Error><Code>SlowDown</Code></Error>" });
      } else {
        route.continue();
      }
    },
  );
  const signed = [];
  const onRequest = (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/multipart/sign") signed.push(r.postDataJSON());
  };
  page.on("request", onRequest);
  try {
    await page.setInputFiles("#files", files.retried);
    const r = await finished(page, "retried-noise-17mib.png", "done");
    assert(
      signed.some((b) => b.first === 2 && b.last === 2),
      `part 2 was not signed again after its 403: ${JSON.stringify(signed)}`,
    );
    assert(r.kind === "multipart" && r.parts === "3", `kind ${r.kind}, ${r.parts} parts`);
    assert(
      attempts.get(1) === 1 && attempts.get(2) === 2 && attempts.get(3) === 2,
      `attempts per part: ${JSON.stringify([...attempts])}`,
    );
    await assertStoredBytes(r.key, files.retried);
  } finally {
    page.off("request", onRequest);
    await page.unrouteAll({ behavior: "ignoreErrors" });
  }
});

await test("screenshot of the finished demo page (PUT, POST, refused type, multipart)", async () => {
  await page.screenshot({ path: join(ARTIFACTS, "demo-page.png"), fullPage: true });
  console.log(`     ${join(ARTIFACTS, "demo-page.png")}`);
});

/**
 * Starts a multipart upload of `path` on our page, lets parts 1 and 2
 * through, holds the others, and reloads the page once 2 are stored (the
 * reload cancels the held requests: they never reach storage).
 */
async function interruptAfterTwoParts(page, path, name) {
  const held = [];
  await page.route(
    isPartUrl,
    (route) => {
      const n = partNumber(route.request());
      if (route.request().method() === "PUT" && n > 2) held.push(route);
      else route.continue();
    },
  );
  await page.setInputFiles("#files", path);
  await page
    .locator(`li.upload[data-name="${name}"] .status`)
    .filter({ hasText: "Uploaded 2 of 5 parts" })
    .waitFor({ timeout: 60_000 });
  assert(held.length >= 1, "no part was held");
  await page.reload();
  await page.unrouteAll({ behavior: "ignoreErrors" });
  await page.locator("#resumable-list li").filter({ hasText: name }).waitFor();
}

await test("an interrupted multipart upload resumes after a reload without resending stored parts", async () => {
  await interruptAfterTwoParts(page, files.resume, "resume-noise-40mib.png");
  const parts = watchParts(page);
  await page.setInputFiles("#files", files.resume);
  const r = await finished(page, "resume-noise-40mib.png", "done");
  assert(r.skippedParts === "1,2", `parts found stored: ${r.skippedParts}`);
  assert(partSet(parts.sent) === "[3,4,5]", `parts sent after the reload: ${parts.sent} (1 and 2 were stored)`);
  assert(await page.locator("#resumable").isHidden(), "the finished upload is still listed as resumable");
  await assertStoredBytes(r.key, files.resume);
  await page.screenshot({ path: join(ARTIFACTS, "demo-page-resumed.png"), fullPage: true });
});

await test("a resume with another file of the same name, size and date resends every part", async () => {
  await interruptAfterTwoParts(page, files.twinA, "twin-noise-40mib.png");
  const parts = watchParts(page);
  await page.setInputFiles("#files", files.twinB);
  const r = await finished(page, "twin-noise-40mib.png", "done");
  assert(r.skippedParts === "", `parts skipped for a different file: ${r.skippedParts}`);
  assert(partSet(parts.sent) === "[1,2,3,4,5]", `parts sent: ${parts.sent}`);
  await assertStoredBytes(r.key, files.twinB);
});

await test("Uppy (pinned @uppy/aws-s3): a small JPEG by presigned PUT, 40 MiB multipart with parallel parts", async () => {
  const pinned = JSON.parse(readFileSync(join(here, "../package.json"), "utf8")).dependencies["@uppy/aws-s3"];
  const uppy = await context.newPage();
  uppy.on("pageerror", (e) => console.log(`uppy page error: ${e.message}`));
  const parts = watchParts(uppy);
  await uppy.goto(`${DEMO}/uppy.html`);
  await uppy.waitForFunction(() => window.uppyVersion !== undefined);
  const version = await uppy.evaluate(() => window.uppyVersion);
  assert(version === pinned, `@uppy/aws-s3 ${version} loaded, ${pinned} pinned`);
  await uppy.setInputFiles(".uppy-Dashboard-input >> nth=0", [files.uppySmall, files.uppyBig]);
  await uppy.waitForFunction(() => window.uppyResults.length >= 2, null, { timeout: 120_000 });
  const errors = (await uppy.evaluate(() => window.uppyResults)).filter((x) => x.error);
  assert(errors.length === 0, `Uppy errors: ${JSON.stringify(errors)}`);
  const big = await finished(uppy, "uppy-noise-40mib.png", "done");
  const small = await finished(uppy, "uppy-kleiber.jpg", "done");
  assert(big.kind === "multipart" && small.kind === "single", `kinds ${big.kind}, ${small.kind}`);
  assert(partSet(parts.sent) === "[1,2,3,4,5]", `part requests: ${parts.sent}`);
  assert(parts.maxInFlight >= 2, `at most ${parts.maxInFlight} part request in flight: not parallel`);
  console.log(`     parts in flight at once: up to ${parts.maxInFlight}`);
  assert(big.thumbWidth > 0 && small.thumbWidth > 0, "missing thumbnails");
  await assertStoredBytes(big.key, files.uppyBig);
  await assertStoredBytes(small.key, files.uppySmall);
  await uppy.screenshot({ path: join(ARTIFACTS, "uppy-page.png"), fullPage: true });
  await uppy.close();
});

await test("Uppy 6 (pinned @uppy/aws-s3 6, signRequest): a small JPEG by presigned PUT, 17 MiB multipart completed through the server", async () => {
  const pinned = JSON.parse(readFileSync(join(here, "../uppy6/package.json"), "utf8")).dependencies["@uppy/aws-s3"];
  assert(pinned.startsWith("6."), `uppy6/package.json pins @uppy/aws-s3 ${pinned}`);
  const uppy = await context.newPage();
  uppy.on("pageerror", (e) => console.log(`uppy 6 page error: ${e.message}`));
  const parts = watchParts(uppy);
  // What the page asks the server, and the single PUT it sends to storage.
  const signed = [];
  const control = [];
  const puts = [];
  uppy.on("request", (r) => {
    const url = new URL(r.url());
    if (url.pathname === "/s3/sign") signed.push(JSON.parse(r.postData()).method);
    else if (url.pathname.startsWith("/s3/sign/multipart/")) control.push(`${r.method()} ${url.pathname.split("/").pop()}`);
    else if (r.method() === "PUT" && !isPartUrl(url)) puts.push(r.headers());
  });
  await uppy.goto(`${DEMO}/uppy6.html`);
  await uppy.waitForFunction(() => window.uppyVersion !== undefined);
  const version = await uppy.evaluate(() => window.uppyVersion);
  assert(version === pinned, `@uppy/aws-s3 ${version} loaded, ${pinned} pinned`);
  await uppy.setInputFiles(".uppy-Dashboard-input >> nth=0", [files.uppy6Small, files.uppy6Big]);
  await uppy.waitForFunction(() => window.uppyResults.length >= 2, null, { timeout: 120_000 });
  const errors = (await uppy.evaluate(() => window.uppyResults)).filter((x) => x.error);
  assert(errors.length === 0, `Uppy 6 errors: ${JSON.stringify(errors)}`);
  const big = await finished(uppy, "uppy6-noise-17mib.png", "done");
  const small = await finished(uppy, "uppy6-kleiber.jpg", "done");
  assert(big.kind === "multipart" && small.kind === "single", `kinds ${big.kind}, ${small.kind}`);
  assert(/^uploads\/anonymous\/[0-9a-f-]{36}\.png$/.test(big.key), `multipart key ${big.key}`);
  assert(/^uploads\/anonymous\/[0-9a-f-]{36}\.jpg$/.test(small.key), `single key ${small.key}`);
  assert(partSet(parts.sent) === "[1,2,3]", `part requests: ${parts.sent}`);
  const counts = signed.reduce((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});
  // One PutObject and three UploadPart (PUT), CreateMultipartUpload and
  // CompleteMultipartUpload (POST).
  assert(counts.PUT === 4 && counts.POST === 2, `signRequest calls: ${JSON.stringify(signed)}`);
  assert(JSON.stringify(control.sort()) === JSON.stringify(["POST complete", "POST created"]), `control requests: ${control}`);
  assert(puts.length === 1 && puts[0]["if-none-match"] === "*", `single PUT headers: ${JSON.stringify(puts)}`);
  assert(puts[0]["x-amz-meta-upload-route"] === "default", `single PUT metadata: ${JSON.stringify(puts[0])}`);
  assert(big.thumbWidth > 0 && small.thumbWidth > 0, "missing thumbnails");
  await assertStoredBytes(big.key, files.uppy6Big);
  await assertStoredBytes(small.key, files.uppy6Small);
  await uppy.screenshot({ path: join(ARTIFACTS, "uppy6-page.png"), fullPage: true });
  await uppy.close();
});

await test("without ETag exposed by the bucket's CORS rule a multipart upload fails saying so", async () => {
  await putCors(false);
  try {
    const fresh = await context.newPage();
    await fresh.goto(DEMO);
    await fresh.setInputFiles("#files", files.noEtag);
    const r = await finished(fresh, "no-etag-noise-17mib.png", "error", 60_000);
    assert(r.kind === "multipart", `kind ${r.kind}`);
    assert(
      r.status.includes("ETag header is not readable") && r.status.includes("must expose ETag"),
      `message: ${r.status}`,
    );
    await fresh.close();
  } finally {
    await putCors(true);
  }
});

await browser.close();
const failed = results.filter((r) => !r.ok);
console.log(`browser tests: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
