// The demo page's client: plain JavaScript, no build step.
//
// Flow (see crates/upload-server/src/lib.rs for the API):
//   POST /uploads {content_type, size, filename, form}
//     -> {kind: "put"}       one presigned PUT, Content-Type signed
//     -> {kind: "post"}      a presigned POST form (fields first, file last)
//     -> {kind: "multipart"} an upload ID, a session token and part URLs
//   parts go CONCURRENCY at a time, each retried (signed again after a 403
//   or a network error, POST /multipart/sign); the first that cannot be
//   stored stops the others. The session is kept in localStorage with each
//   stored part's ETag and SHA-256, so an interrupted upload resumes after
//   a reload: the page lists the stored parts (GET /multipart/parts), skips
//   those whose bytes match the file and sends only the others.
//   GET /uploads/status?key=K&wait=20 is a long poll: the server holds it
//   until the worker's manifest exists (or 20 s pass, then it is asked again).
//
// Every state a test (or a person) needs is on the upload's <li>:
// data-state (signing, uploading, completing, processing, done, rejected,
// infected, error), data-key, data-kind, data-parts, data-skipped-parts.

const CONCURRENCY = 4; // parts in flight at once
const RETRIES = 3; // attempts per part after the first
const POLL_MS = 1000;
const POLL_LIMIT_MS = 180_000;
const STORE_PREFIX = "upload-sdk-demo:multipart:";
const MiB = 1024 * 1024;

/** An error answered by our API: `{"error": code, "message": text}`. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls our API; 2xx answers return `{status, json}`. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    throw new ApiError(
      res.status,
      json?.error ?? "http_error",
      json?.message ?? `${method} ${path}: HTTP ${res.status}`,
    );
  }
  return { status: res.status, json };
}

/**
 * Sends one request straight to storage with XMLHttpRequest (fetch has no
 * upload progress). Resolves with the status, the ETag header as the page
 * can read it (null when the bucket's CORS rule does not expose it) and
 * the body; rejects on network errors, which is also how a refused CORS
 * preflight looks from a page.
 */
function send(method, url, headers, body, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of headers) {
      // The browser sets these itself (and refuses to be told).
      if (!["content-length", "host"].includes(name.toLowerCase())) {
        xhr.setRequestHeader(name, value);
      }
    }
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded);
    xhr.onload = () =>
      resolve({
        status: xhr.status,
        // Only the headers the bucket's CORS rule exposes are listed (asking
        // for another logs "Refused to get unsafe header").
        etag: /^etag:/im.test(xhr.getAllResponseHeaders()) ? xhr.getResponseHeader("ETag") : null,
        text: xhr.responseText,
      });
    xhr.onerror = () =>
      reject(
        new Error(
          `${method} to storage failed before an answer (server down, or the bucket's CORS rule refused this origin ${location.origin})`,
        ),
      );
    xhr.onabort = () => reject(new Error("aborted"));
    if (signal?.aborted) return reject(new Error("aborted"));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

/** The ETag of a stored part or object, or a clear error when unreadable. */
function requireEtag(res, what) {
  if (res.status < 200 || res.status > 299) {
    throw new Error(`${what}: storage answered HTTP ${res.status}: ${s3Message(res.text)}`);
  }
  if (!res.etag) {
    throw new Error(
      `${what}: storage answered ${res.status} but the ETag header is not readable from this page: ` +
        "the bucket's CORS rule must expose ETag (ExposeHeaders: ETag), or multipart uploads cannot complete",
    );
  }
  return res.etag;
}

/** The `<Code>` of an S3 error body, when there is one. */
const s3Code = (text) => /<Code>([^<]*)<\/Code>/.exec(text ?? "")?.[1];

/** `<Code>` and `<Message>` of an S3 error body, when there is one. */
function s3Message(text) {
  const code = s3Code(text);
  const message = /<Message>([^<]*)<\/Message>/.exec(text ?? "")?.[1];
  return [code, message].filter(Boolean).join(": ") || "no S3 error body";
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function formatBytes(n) {
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** One upload's row on the page. */
class Row {
  constructor(file) {
    this.el = document.createElement("li");
    this.el.className = "upload";
    this.el.dataset.name = file.name;
    this.el.innerHTML =
      '<span class="name"></span><div class="thumb"></div>' +
      '<progress max="1" value="0"></progress><span class="status"></span><span class="detail"></span>';
    this.el.querySelector(".name").textContent = `${file.name} (${formatBytes(file.size)})`;
    this.total = file.size;
    document.getElementById("uploads").prepend(this.el);
  }
  set(state, text) {
    this.el.dataset.state = state;
    this.el.querySelector(".status").textContent = text;
  }
  detail(text) {
    this.el.querySelector(".detail").textContent = text;
  }
  progress(loaded) {
    this.el.querySelector("progress").value = this.total ? Math.min(loaded / this.total, 1) : 1;
  }
}

// --- multipart sessions kept across reloads --------------------------------

/** A file's identity for resuming: name, size and modification time. */
const fileId = (file) => `${file.name}|${file.size}|${file.lastModified}`;

/** Files being uploaded by this page now (by fileId). */
const active = new Set();

function loadSession(file) {
  try {
    return JSON.parse(localStorage.getItem(STORE_PREFIX + fileId(file)));
  } catch {
    return null;
  }
}

/**
 * Keeps a session: key, upload ID, session token, part size and count,
 * and `sent`: for each part stored, its ETag and the SHA-256 of the bytes
 * sent, so a resume only skips parts whose bytes are this file's.
 */
function saveSession(file, session) {
  localStorage.setItem(
    STORE_PREFIX + fileId(file),
    JSON.stringify({ ...session, name: file.name, size: file.size, saved_at: new Date().toISOString() }),
  );
}

function recordPart(file, n, etag, sha256) {
  const s = loadSession(file);
  if (!s) return;
  s.sent = { ...(s.sent ?? {}), [n]: { etag, sha256 } };
  saveSession(file, s);
}

function forgetSession(id) {
  localStorage.removeItem(STORE_PREFIX + id);
  showResumable();
}

/** Lists unfinished multipart uploads (not running now), with Abort. */
function showResumable() {
  const list = document.getElementById("resumable-list");
  list.replaceChildren();
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (!k.startsWith(STORE_PREFIX) || active.has(k.slice(STORE_PREFIX.length))) continue;
    let s;
    try {
      s = JSON.parse(localStorage.getItem(k));
    } catch {
      continue;
    }
    const li = document.createElement("li");
    li.dataset.key = s.key;
    const stored = Object.keys(s.sent ?? {}).length;
    li.textContent = `${s.name} (${formatBytes(s.size)}, ${stored} of ${s.part_count} parts stored) `;
    const abort = document.createElement("button");
    abort.textContent = "Abort";
    abort.onclick = async () => {
      try {
        await api("POST", "/multipart/abort", { key: s.key, upload_id: s.upload_id, session: s.session });
      } catch (e) {
        // Gone already (404), or the server no longer knows the session
        // (403 after a restart): nothing left to abort from here.
        if (!(e instanceof ApiError && [403, 404].includes(e.status))) return alert(e.message);
      }
      forgetSession(k.slice(STORE_PREFIX.length));
    };
    li.append(abort);
    list.append(li);
  }
  document.getElementById("resumable").hidden = list.children.length === 0;
}

/** Hex SHA-256 of a blob. */
async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const unquote = (etag) => etag.replaceAll('"', "");

/**
 * The type to declare: the browser's, or, when it has none (no or an
 * unknown extension), the one the magic bytes say. The worker checks the
 * bytes again either way.
 */
async function contentType(file) {
  if (file.type) return file.type;
  const b = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const starts = (...xs) => xs.every((x, i) => b[i] === x);
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "image/png";
  if (starts(0x47, 0x49, 0x46, 0x38)) return "image/gif";
  if (starts(0x52, 0x49, 0x46, 0x46) && String.fromCharCode(...b.slice(8, 12)) === "WEBP") return "image/webp";
  if (starts(0x25, 0x50, 0x44, 0x46, 0x2d)) return "application/pdf";
  return "application/octet-stream";
}

// --- the three ways up -------------------------------------------------------

async function putSingle(file, row, ticket) {
  row.set("uploading", "Uploading (presigned PUT)…");
  const res = await send(ticket.request.method, ticket.request.url, ticket.request.headers, file, (n) =>
    row.progress(n),
  );
  if (res.status < 200 || res.status > 299) {
    throw new Error(`PUT: storage answered HTTP ${res.status}: ${s3Message(res.text)}`);
  }
  if (!res.etag) {
    // Stored all the same; multipart uploads would fail, though.
    row.detail("Warning: the bucket's CORS rule does not expose ETag; multipart uploads will fail until it does.");
  }
}

async function postForm(file, row, ticket) {
  row.set("uploading", "Uploading (presigned POST)…");
  const form = new FormData();
  for (const [name, value] of ticket.fields) form.append(name, value);
  form.append("file", file); // S3 ignores fields after the file
  const res = await send("POST", ticket.url, [], form, (n) => row.progress(n));
  if (![200, 201, 204].includes(res.status)) {
    throw new Error(`POST: storage answered HTTP ${res.status}: ${s3Message(res.text)}`);
  }
}

/** Every stored part of a session, by part number (all pages). */
async function storedParts(s) {
  const stored = new Map();
  let marker = 0;
  for (;;) {
    const q = new URLSearchParams({
      key: s.key,
      upload_id: s.upload_id,
      session: s.session,
      part_number_marker: String(marker),
    });
    const { json: page } = await api("GET", `/multipart/parts?${q}`);
    for (const p of page.parts) stored.set(p.part_number, p);
    if (!page.is_truncated) return stored;
    marker = page.next_part_number_marker;
  }
}

/** The presigned request of part `n`. */
async function signPart(s, n) {
  const { json } = await api("POST", "/multipart/sign", {
    key: s.key,
    upload_id: s.upload_id,
    session: s.session,
    first: n,
    last: n,
  });
  return json.parts[0].request;
}

/** `POST /multipart/complete` with `parts` (part number → ETag). */
async function completeUpload(s, parts) {
  const list = [...parts.entries()].sort((a, b) => a[0] - b[0]).map(([part_number, etag]) => ({ part_number, etag }));
  await api("POST", "/multipart/complete", { key: s.key, upload_id: s.upload_id, session: s.session, parts: list });
}

/**
 * Uploads the parts storage does not hold yet, CONCURRENCY at a time, and
 * completes. A part is retried (signed again after a 403, which is how an
 * expired URL answers, or after a network error, which may hide one); the
 * first part that cannot be stored stops the others and fails the upload,
 * keeping the session for a resume.
 */
async function multipart(file, row, s, resumed) {
  const start = (n) => (n - 1) * s.part_size;
  const size = (n) => (n < s.part_count ? s.part_size : file.size - start(n));
  const slice = (n) => file.slice(start(n), start(n) + size(n));
  row.el.dataset.kind = "multipart";
  row.el.dataset.key = s.key;
  row.el.dataset.parts = String(s.part_count);
  row.set("uploading", resumed ? "Resuming: listing the parts already stored…" : "Uploading parts…");

  // After a reload (or a failed attempt) storage knows which parts it has;
  // one is skipped only if this page sent it with these very bytes.
  const done = new Map();
  if (resumed) {
    const sent = loadSession(file)?.sent ?? {};
    for (const [n, p] of await storedParts(s)) {
      const mine = sent[n];
      if (n > s.part_count || p.size !== size(n) || !mine || unquote(mine.etag) !== unquote(p.etag)) continue;
      if ((await sha256Hex(slice(n))) === mine.sha256) done.set(n, p.etag);
    }
  }
  row.el.dataset.skippedParts = [...done.keys()].sort((a, b) => a - b).join(",");
  const todo = [];
  for (let n = 1; n <= s.part_count; n++) if (!done.has(n)) todo.push(n);
  const urls = new Map((s.parts ?? []).map((p) => [p.part_number, p.request]));

  const inFlight = new Map();
  let storedBytes = [...done.keys()].reduce((sum, n) => sum + size(n), 0);
  const update = () => row.progress(storedBytes + [...inFlight.values()].reduce((a, b) => a + b, 0));
  update();
  row.detail(
    `${s.part_count} parts of ${formatBytes(s.part_size)}, up to ${CONCURRENCY} in parallel` +
      (done.size ? `; ${done.size} already stored, not sent again` : ""),
  );
  row.set("uploading", `Uploading ${todo.length} of ${s.part_count} parts…`);

  const stop = new AbortController();
  let failure = null;

  const sendPart = async (n) => {
    const body = slice(n);
    const sha256 = await sha256Hex(body);
    for (let attempt = 0; ; attempt++) {
      if (stop.signal.aborted) throw failure;
      // Signed when first needed or after a refusal (ApiError: fatal).
      if (!urls.has(n)) urls.set(n, await signPart(s, n));
      const req = urls.get(n);
      let res;
      try {
        res = await send(req.method, req.url, req.headers, body, (b) => {
          inFlight.set(n, b);
          update();
        }, stop.signal);
      } catch (e) {
        inFlight.delete(n);
        if (stop.signal.aborted || attempt >= RETRIES) throw e;
        urls.delete(n);
        await sleep(500 * 2 ** attempt);
        continue;
      }
      inFlight.delete(n);
      const code = s3Code(res.text);
      if (res.status === 403 && attempt < RETRIES) {
        urls.delete(n); // most likely expired: sign this part again
        continue;
      }
      if ((res.status >= 500 || code === "RequestTimeout") && attempt < RETRIES) {
        await sleep(500 * 2 ** attempt);
        continue;
      }
      return { etag: requireEtag(res, `part ${n}`), sha256 };
    }
  };

  const queue = [...todo];
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined && !failure; n = queue.shift()) {
      try {
        const { etag, sha256 } = await sendPart(n);
        done.set(n, etag);
        recordPart(file, n, etag, sha256);
        storedBytes += size(n);
        update();
        if (!failure) row.set("uploading", `Uploaded ${done.size} of ${s.part_count} parts…`);
      } catch (e) {
        if (!failure) {
          failure = e;
          queue.length = 0;
          stop.abort();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
  if (failure) {
    throw new Error(
      `${failure.message}. The ${done.size} of ${s.part_count} parts stored are kept: pick the same file again to resume`,
    );
  }

  row.set("completing", "Completing the multipart upload…");
  await completeUpload(s, done);
  forgetSession(fileId(file));
}

/**
 * Resumes a saved session. When the upload is gone (404) but every part
 * was recorded, the page was most likely reloaded while completing: the
 * completion is asked again, which the server answers with the object
 * those parts made. Returns false when the session cannot be resumed.
 */
async function resume(file, row, saved) {
  try {
    await multipart(file, row, saved, true);
    return true;
  } catch (e) {
    if (!(e instanceof ApiError && [403, 404].includes(e.status))) throw e;
    const sent = new Map(Object.entries(saved.sent ?? {}).map(([n, p]) => [Number(n), p.etag]));
    if (e.status === 404 && sent.size === saved.part_count) {
      try {
        await completeUpload(saved, sent);
        forgetSession(fileId(file));
        return true;
      } catch {
        // fall through: start afresh
      }
    }
    forgetSession(fileId(file));
    return false;
  }
}

// --- after the upload: the worker's manifest --------------------------------

async function awaitProcessed(key, row) {
  row.el.dataset.key = key;
  row.progress(row.total);
  row.set("processing", "Uploaded; waiting for the worker (type check, virus scan, variants)…");
  const started = Date.now();
  while (Date.now() - started < POLL_LIMIT_MS) {
    try {
      const { status, json } = await api("GET", `/uploads/status?${new URLSearchParams({ key, wait: "20" })}`);
      if (status === 200 && json.state === "processed") return showManifest(json, row);
    } catch (e) {
      // A server error or a lost connection passes; a refusal (4xx) does not.
      if (e instanceof ApiError && e.status < 500) throw e;
      await sleep(POLL_MS);
    }
  }
  row.set("error", `The worker has not processed ${key} after ${POLL_LIMIT_MS / 1000} s: is it running?`);
}

function showManifest({ manifest, variant_urls }, row) {
  const m = manifest;
  if (m.verdict === "rejected") return row.set("rejected", `Rejected by the worker: ${m.reason}`);
  if (m.verdict === "infected") return row.set("infected", `Infected (${m.signature}): quarantined`);
  if (m.verdict !== "clean") return row.set("error", `Not scanned: ${m.reason ?? m.verdict}`);
  const urls = new Map(variant_urls);
  const thumb = urls.get("thumb") ?? variant_urls[0]?.[1];
  if (thumb) {
    const img = document.createElement("img");
    img.src = thumb;
    img.alt = `thumbnail of ${row.el.dataset.name}`;
    row.el.querySelector(".thumb").replaceChildren(img);
  }
  row.detail(
    m.variants.length
      ? m.variants.map((v) => `${v.name} ${v.width}×${v.height} ${v.content_type} (${formatBytes(v.bytes)})`).join(", ")
      : "clean; no image variants for this type",
  );
  row.set("done", `Clean: ${m.variants.length} variant${m.variants.length === 1 ? "" : "s"} ready`);
}

// --- wiring ------------------------------------------------------------------

async function upload(file) {
  const row = new Row(file);
  const id = fileId(file);
  if (active.has(id)) {
    return row.set("error", "This file is already being uploaded on this page.");
  }
  active.add(id);
  showResumable();
  try {
    const saved = loadSession(file);
    if (saved && (await resume(file, row, saved))) return await awaitProcessed(saved.key, row);
    row.set("signing", "Asking the server for a presigned URL…");
    const form = document.querySelector("input[name=form]:checked").value;
    const { json: t } = await api("POST", "/uploads", {
      content_type: await contentType(file),
      size: file.size,
      filename: file.name,
      form,
    });
    row.el.dataset.kind = t.kind;
    row.el.dataset.key = t.key;
    if (t.kind === "put") await putSingle(file, row, t);
    else if (t.kind === "post") await postForm(file, row, t);
    else {
      saveSession(file, {
        key: t.key,
        upload_id: t.upload_id,
        session: t.session,
        part_size: t.part_size,
        part_count: t.part_count,
        sent: {},
      });
      await multipart(file, row, { ...t }, false);
    }
    await awaitProcessed(t.key, row);
  } catch (e) {
    const refused = e instanceof ApiError && e.status < 500;
    row.set("error", refused ? `Refused by the server: ${e.message}` : `Failed: ${e.message}`);
  } finally {
    active.delete(id);
    showResumable();
  }
}

async function loadConfig() {
  const el = document.getElementById("config");
  try {
    const { json: c } = await api("GET", "/config");
    el.textContent =
      `Accepted: ${c.content_types.join(", ")}, up to ${formatBytes(c.max_bytes)}. ` +
      `Multipart above ${formatBytes(c.multipart_threshold)}, in parts of ${formatBytes(c.part_size)}.`;
  } catch (e) {
    el.textContent = `The server's policy could not be loaded: ${e.message}`;
  }
}

document.getElementById("files").addEventListener("change", (e) => {
  for (const file of e.target.files) upload(file);
  e.target.value = ""; // the same file may be picked again (resume)
});
showResumable();
loadConfig();
