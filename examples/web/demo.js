// The demo page's client: plain JavaScript, no build step.
//
// Flow (see examples/src/presign_server.rs for the API):
//   POST /uploads {content_type, size, filename, form}
//     -> {kind: "put"}       one presigned PUT, Content-Type signed
//     -> {kind: "post"}      a presigned POST form (fields first, file last)
//     -> {kind: "multipart"} an upload ID, a session token and part URLs
//   parts go CONCURRENCY at a time, each retried; the session is kept in
//   localStorage so an interrupted upload resumes after a reload: the page
//   lists the stored parts (GET /multipart/parts) and sends only the others.
//   GET /uploads/status?key=K is polled until the worker's manifest exists.
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
        etag: xhr.getResponseHeader("ETag"),
        text: xhr.responseText,
      });
    xhr.onerror = () =>
      reject(
        new Error(
          `${method} to storage failed before an answer (server down, or the bucket's CORS rule refused this origin ${location.origin})`,
        ),
      );
    xhr.onabort = () => reject(new Error("aborted"));
    signal?.addEventListener("abort", () => xhr.abort());
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

/** `<Code>` and `<Message>` of an S3 error body, when there is one. */
function s3Message(text) {
  const code = /<Code>([^<]*)<\/Code>/.exec(text ?? "")?.[1];
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

function loadSession(file) {
  try {
    return JSON.parse(localStorage.getItem(STORE_PREFIX + fileId(file)));
  } catch {
    return null;
  }
}

function saveSession(file, session) {
  localStorage.setItem(
    STORE_PREFIX + fileId(file),
    JSON.stringify({ ...session, name: file.name, size: file.size, saved_at: new Date().toISOString() }),
  );
}

function forgetSession(id) {
  localStorage.removeItem(STORE_PREFIX + id);
  showResumable();
}

/** Lists interrupted multipart uploads, with a button to abort each. */
function showResumable() {
  const list = document.getElementById("resumable-list");
  list.replaceChildren();
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (!k.startsWith(STORE_PREFIX)) continue;
    let s;
    try {
      s = JSON.parse(localStorage.getItem(k));
    } catch {
      continue;
    }
    const li = document.createElement("li");
    li.dataset.key = s.key;
    li.textContent = `${s.name} (${formatBytes(s.size)}, ${s.part_count} parts) `;
    const abort = document.createElement("button");
    abort.textContent = "Abort";
    abort.onclick = async () => {
      try {
        await api("POST", "/multipart/abort", { key: s.key, upload_id: s.upload_id, session: s.session });
      } catch (e) {
        // Already gone is what we want; other errors are shown.
        if (!(e instanceof ApiError && e.status === 404)) alert(e.message);
      }
      forgetSession(k.slice(STORE_PREFIX.length));
    };
    li.append(abort);
    list.append(li);
  }
  document.getElementById("resumable").hidden = list.children.length === 0;
}

// --- the three ways up -------------------------------------------------------

async function putSingle(file, row, ticket) {
  row.set("uploading", "Uploading (presigned PUT)…");
  const res = await send(ticket.request.method, ticket.request.url, ticket.request.headers, file, (n) =>
    row.progress(n),
  );
  requireEtag(res, "PUT");
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

/** Presigned URLs for `numbers`, signed in ranges of at most 100. */
async function partUrls(s, numbers) {
  const urls = new Map();
  for (const p of s.parts ?? []) urls.set(p.part_number, p.request);
  const unsigned = numbers.filter((n) => !urls.has(n));
  for (let i = 0; i < unsigned.length; ) {
    const first = unsigned[i];
    let j = i;
    while (j + 1 < unsigned.length && unsigned[j + 1] - first < 100) j++;
    const { json } = await api("POST", "/multipart/sign", {
      key: s.key,
      upload_id: s.upload_id,
      session: s.session,
      first,
      last: unsigned[j],
    });
    for (const p of json.parts) urls.set(p.part_number, p.request);
    i = j + 1;
  }
  return urls;
}

async function multipart(file, row, s, resumed) {
  const size = (n) => (n < s.part_count ? s.part_size : file.size - s.part_size * (s.part_count - 1));
  row.el.dataset.kind = "multipart";
  row.el.dataset.key = s.key;
  row.el.dataset.parts = String(s.part_count);
  row.set("uploading", resumed ? "Resuming: listing the parts already stored…" : "Uploading parts…");
  // After a reload (or a failed attempt) storage knows which parts it has.
  const stored = resumed ? await storedParts(s) : new Map();
  const done = new Map();
  for (const [n, p] of stored) if (n <= s.part_count && p.size === size(n)) done.set(n, p.etag);
  row.el.dataset.skippedParts = [...done.keys()].sort((a, b) => a - b).join(",");
  const todo = [];
  for (let n = 1; n <= s.part_count; n++) if (!done.has(n)) todo.push(n);
  const urls = todo.length ? await partUrls(s, todo) : new Map();

  const inFlight = new Map();
  let storedBytes = [...done.keys()].reduce((sum, n) => sum + size(n), 0);
  const update = () => row.progress(storedBytes + [...inFlight.values()].reduce((a, b) => a + b, 0));
  update();
  row.detail(
    `${s.part_count} parts of ${formatBytes(s.part_size)}, up to ${CONCURRENCY} in parallel` +
      (done.size ? `; ${done.size} already stored, not sent again` : ""),
  );
  row.set("uploading", `Uploading ${todo.length} of ${s.part_count} parts…`);

  const queue = [...todo];
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      const start = (n - 1) * s.part_size;
      const body = file.slice(start, start + size(n));
      let etag;
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await send(urls.get(n).method, urls.get(n).url, urls.get(n).headers, body, (b) => {
            inFlight.set(n, b);
            update();
          });
          if (res.status >= 500 && attempt < RETRIES) throw new Error(`HTTP ${res.status}`);
          etag = requireEtag(res, `part ${n}`);
          break;
        } catch (e) {
          inFlight.delete(n);
          if (attempt >= RETRIES || /ETag header is not readable|HTTP 4\d\d/.test(e.message)) {
            throw new Error(
              `${e.message}. The ${done.size} parts already stored are kept: pick the same file again to resume`,
            );
          }
          await sleep(500 * 2 ** attempt);
        }
      }
      inFlight.delete(n);
      done.set(n, etag);
      storedBytes += size(n);
      update();
      row.set("uploading", `Uploaded ${done.size} of ${s.part_count} parts…`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));

  row.set("completing", "Completing the multipart upload…");
  const parts = [...done.entries()].sort((a, b) => a[0] - b[0]).map(([part_number, etag]) => ({ part_number, etag }));
  await api("POST", "/multipart/complete", { key: s.key, upload_id: s.upload_id, session: s.session, parts });
  forgetSession(fileId(file));
}

// --- after the upload: the worker's manifest --------------------------------

async function awaitProcessed(key, row) {
  row.el.dataset.key = key;
  row.progress(row.total);
  row.set("processing", "Uploaded; waiting for the worker (type check, virus scan, variants)…");
  const started = Date.now();
  while (Date.now() - started < POLL_LIMIT_MS) {
    const { status, json } = await api("GET", `/uploads/status?${new URLSearchParams({ key })}`);
    if (status === 200 && json.state === "processed") return showManifest(json, row);
    await sleep(POLL_MS);
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
  try {
    const saved = loadSession(file);
    if (saved) {
      try {
        await multipart(file, row, saved, true);
        return await awaitProcessed(saved.key, row);
      } catch (e) {
        // The session is gone (aborted, expired, or the server restarted
        // with another secret): start afresh; anything else is shown.
        if (!(e instanceof ApiError && [403, 404].includes(e.status))) throw e;
        forgetSession(fileId(file));
      }
    }
    row.set("signing", "Asking the server for a presigned URL…");
    const form = document.querySelector("input[name=form]:checked").value;
    const { json: t } = await api("POST", "/uploads", {
      content_type: file.type || "application/octet-stream",
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
      });
      showResumable();
      await multipart(file, row, { ...t }, false);
    }
    await awaitProcessed(t.key, row);
  } catch (e) {
    row.set("error", e instanceof ApiError ? `Refused by the server: ${e.message}` : `Failed: ${e.message}`);
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
