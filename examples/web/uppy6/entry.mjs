// Uppy 6 for /uppy6.html, bundled by esbuild (npm run build) into
// dist/uppy6.js and dist/uppy6.css.
import "@uppy/core/css/style.min.css";
import "@uppy/dashboard/css/style.min.css";

export { default as Uppy } from "@uppy/core";
export { default as Dashboard } from "@uppy/dashboard";
export { default as AwsS3 } from "@uppy/aws-s3";
