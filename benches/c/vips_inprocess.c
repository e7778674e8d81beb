/* libvips thumbnails timed in-process: the baseline of bench-thumbnail.
 *
 * usage: vips-inprocess OUTDIR PASSES FILE...
 *
 * Reads every FILE into memory, then makes one untimed warm-up pass
 * (libvips loads its modules and fills its lookup tables on first use;
 * the thumbnails of this pass are written to OUTDIR/<index>.vips.webp), then
 * PASSES timed passes. Each thumbnail is what `vipsthumbnail --size 256
 * -o x.webp[Q=80,strip]` makes: vips_thumbnail_buffer() to fit within
 * 256 x 256 (shrink-on-load, auto-rotation, an embedded ICC profile to
 * sRGB), then vips_webpsave_buffer() at Q 80 (effort 4), metadata stripped
 * (see thumbnail() for libvips 8.14.1).
 * The CPU time of the whole process (every thread libvips starts; run it
 * with VIPS_CONCURRENCY=1) is read with clock_gettime(CLOCK_PROCESS_CPUTIME_ID)
 * around those two calls only. The operation cache is off, so that no
 * pass reuses another's result.
 *
 * Output, one line each, on stdout:
 *   size INDEX WIDTH HEIGHT BYTES      (warm-up pass)
 *   cpu INDEX SECONDS                  (each timed pass)
 *   vmhwm_kb KIB                       (peak RSS of this process, at the end)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vips/vips.h>

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static long vmhwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* One thumbnail of BUF; 0 on success. */
static int thumbnail(const void *buf, size_t len, void **out, size_t *out_len,
	int *width, int *height)
{
	VipsImage *thumb;
	int result;

	VipsImage *bare;
	gchar **fields;
	int i;

	if (vips_thumbnail_buffer((void *) buf, len, &thumb, 256,
		    "height", 256, NULL))
		return -1;
	/* libvips 8.14.0 and 8.14.1 (Debian 12) ignore "strip" in webpsave
	 * (fixed in 8.14.2): drop the metadata from a (lazy) copy instead, so
	 * that neither side writes EXIF, XMP or ICC. What remains is a fresh
	 * EXIF block of a few dozen bytes with the resolution, which 8.14
	 * writes for any image.
	 */
	if (vips_copy(thumb, &bare, NULL)) {
		g_object_unref(thumb);
		return -1;
	}
	g_object_unref(thumb);
	fields = vips_image_get_fields(bare);
	for (i = 0; fields[i]; i++)
		if (vips_isprefix("exif-", fields[i]) ||
			strcmp(fields[i], "xmp-data") == 0 ||
			strcmp(fields[i], "iptc-data") == 0 ||
			strcmp(fields[i], "icc-profile-data") == 0 ||
			strcmp(fields[i], "jpeg-thumbnail-data") == 0)
			vips_image_remove(bare, fields[i]);
	g_strfreev(fields);
	result = vips_webpsave_buffer(bare, out, out_len,
		"Q", 80, "strip", TRUE, NULL);
	*width = vips_image_get_width(bare);
	*height = vips_image_get_height(bare);
	g_object_unref(bare);
	return result;
}

int main(int argc, char **argv)
{
	int passes, files, i, pass;
	gchar **contents;
	gsize *lengths;

	if (VIPS_INIT(argv[0]))
		vips_error_exit(NULL);
	if (argc < 4) {
		fprintf(stderr, "usage: %s OUTDIR PASSES FILE...\n", argv[0]);
		return 2;
	}
	vips_cache_set_max(0);
	passes = atoi(argv[2]);
	files = argc - 3;
	contents = g_new0(gchar *, files);
	lengths = g_new0(gsize, files);
	for (i = 0; i < files; i++) {
		GError *error = NULL;
		if (!g_file_get_contents(argv[3 + i], &contents[i], &lengths[i],
			    &error)) {
			fprintf(stderr, "%s: %s\n", argv[3 + i], error->message);
			return 1;
		}
	}

	for (pass = -1; pass < passes; pass++)
		for (i = 0; i < files; i++) {
			void *out = NULL;
			size_t out_len = 0;
			int width = 0, height = 0;
			double start = cpu_now();
			if (thumbnail(contents[i], lengths[i], &out, &out_len,
				    &width, &height)) {
				fprintf(stderr, "%s: %s\n", argv[3 + i],
					vips_error_buffer());
				return 1;
			}
			double cpu = cpu_now() - start;
			if (pass < 0) {
				char *path = g_strdup_printf("%s/%d.vips.webp", argv[1], i);
				if (!g_file_set_contents(path, out, out_len, NULL)) {
					fprintf(stderr, "cannot write %s\n", path);
					return 1;
				}
				g_free(path);
				printf("size %d %d %d %zu\n", i, width, height, out_len);
			}
			else
				printf("cpu %d %.9f\n", i, cpu);
			g_free(out);
		}
	printf("vmhwm_kb %ld\n", vmhwm_kb());
	vips_shutdown();
	return 0;
}
