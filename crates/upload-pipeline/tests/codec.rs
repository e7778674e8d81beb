use std::time::Instant;
use image::GenericImageView;
use upload_pipeline::*;

macro_rules! sample { ($p:literal) => { std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/", $p)).unwrap() } }

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data { crc ^= u32::from(b); for _ in 0..8 { crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 }; } }
    !crc
}
fn chunk(out: &mut Vec<u8>, ty: &[u8;4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut c = ty.to_vec(); c.extend_from_slice(data);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

#[test]
fn explore() {
    let t = sample!("testdata/truncated_jpeg.jpg");
    let r = image::load_from_memory(&t);
    match &r { Ok(i) => { let rgb = i.to_rgb8(); let n = rgb.pixels().count(); let grey = rgb.pixels().filter(|p| p.0 == [128,128,128]).count(); eprintln!("truncated raw: ok {:?} grey {grey}/{n}", i.dimensions()); let rows: Vec<_> = (0..100).step_by(10).map(|y| rgb.get_pixel(50,y).0).collect(); eprintln!("{rows:?}"); } Err(e) => eprintln!("truncated raw: err {e}") }
    eprintln!("tail {:02x?}", &t[t.len()-8..]);
    let codec = StandardCodec::default();
    let lim = DecodeLimits::default();
    eprintln!("trunc codec {:?}", codec.decode(&t, &lim).map(|d| d.width()));
    for f in ["testdata/photo_example_800x533.avif", "testdata/exiftool_QuickTime.heic", "photos/exiftool_PDF.pdf"] {
        let b = std::fs::read(format!("{}/../../samples/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        eprintln!("{f}: {:?}", codec.decode(&b, &lim).map(|d| d.width()));
    }
    // bomb header only
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 50000u32.to_be_bytes().to_vec(); ihdr.extend_from_slice(&50000u32.to_be_bytes()); ihdr.extend_from_slice(&[8,6,0,0,0]);
    chunk(&mut png, b"IHDR", &ihdr);
    let s = Instant::now();
    eprintln!("bomb header-only: {:?} in {:?}", codec.decode(&png, &lim).map(|d| d.width()), s.elapsed());
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
    chunk(&mut png, b"IEND", &[]);
    let s = Instant::now();
    eprintln!("bomb: {:?} in {:?}", codec.decode(&png, &lim).map(|d| d.width()), s.elapsed());
    let s = Instant::now();
    eprintln!("bomb, high limits: {:?} in {:?}", codec.decode(&png, &DecodeLimits::default().with_max_width(60000).with_max_height(60000).with_max_pixels(u64::MAX)).map(|d| d.width()), s.elapsed());
    let s = Instant::now();
    eprintln!("bomb, high limits + alloc: {:?} in {:?}", codec.decode(&png, &DecodeLimits::default().with_max_width(60000).with_max_height(60000).with_max_pixels(u64::MAX).with_max_alloc(u64::MAX)).map(|d| d.width()), s.elapsed());
    // orientation diffs
    let base = codec.decode(&sample!("testdata/hopper.jpg"), &lim).unwrap().image.to_rgb8();
    for n in 2..=8 {
        let b = std::fs::read(format!("{}/../../samples/testdata/hopper_orientation_{n}.jpg", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let d = codec.decode(&b, &lim).unwrap();
        let raw = image::load_from_memory(&b).unwrap().to_rgb8();
        let mad = |a: &image::RgbImage| a.as_raw().iter().zip(base.as_raw()).map(|(x,y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64;
        eprintln!("orient {n}: applied {} mad {:.2} raw mad {:.2}", d.orientation, mad(&d.image.to_rgb8()), mad(&raw));
    }
    let b = sample!("testdata/hopper_orientation_6.webp");
    let d = codec.decode(&b, &lim).unwrap();
    let raw = image::load_from_memory(&b).unwrap().to_rgb8();
    let mad = |a: &image::RgbImage| a.as_raw().iter().zip(base.as_raw()).map(|(x,y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64;
    eprintln!("webp orient: applied {} mad {:.2} raw mad {:.2} {:?}", d.orientation, mad(&d.image.to_rgb8()), mad(&raw), d.image.color());
    // cmyk
    let d = codec.decode(&sample!("testdata/pil_sample_cmyk.jpg"), &lim).unwrap();
    let rgb = d.image.to_rgb8();
    let mut sum = [0u64;3]; for p in rgb.pixels() { for c in 0..3 { sum[c] += p.0[c] as u64; } }
    eprintln!("cmyk mean {:?} {:?}", sum.map(|s| s / 10000), d.image.color());
    for (x,y) in [(10,10),(50,50),(90,90),(10,90),(90,10)] { eprintln!("cmyk px {x},{y} {:?}", rgb.get_pixel(x,y).0); }
    // timings
    let big = sample!("photos/photo_elephants_3840x2160_progressive.jpg");
    for _ in 0..2 { let s = Instant::now(); let d = codec.decode(&big, &lim).unwrap(); let e1 = s.elapsed(); let s = Instant::now(); let t = codec.render(&d, &VariantSpec::thumb()).unwrap(); let e2 = s.elapsed(); let s = Instant::now(); let m = codec.render(&d, &VariantSpec::medium()).unwrap(); eprintln!("4k decode {e1:?} thumb {e2:?} {}x{} medium {:?} {}x{}", t.width, t.height, s.elapsed(), m.width, m.height); }
    let s = Instant::now(); let _ = image::load_from_memory(&big).unwrap(); eprintln!("raw image decode {:?}", s.elapsed());
    for f in ["testdata/fire.gif", "testdata/pngsuite_basn6a16.png", "testdata/pngsuite_ibasn6a08.png", "photos/transparent.png", "testdata/transparent.webp", "testdata/libwebp_test.webp", "testdata/flower.jpg", "testdata/exiftool_Apple.jpg", "testdata/exiftool_GPS.jpg", "photos/derived_bythewater_orient6.jpg"] {
        let b = std::fs::read(format!("{}/../../samples/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let r = codec.decode(&b, &lim);
        eprintln!("{f}: {:?}", r.map(|d| (d.width(), d.height(), d.orientation, d.image.color(), d.source_format)));
    }
}

#[test]
fn dump_cmyk() {
    let b = sample!("testdata/pil_sample_cmyk.jpg");
    let i = image::load_from_memory(&b).unwrap();
    i.save("/tmp/cmyk_image.png").unwrap();
    eprintln!("{:?}", i.color());
    let mut p = 2; while p + 4 < b.len() { let m = b[p+1]; let l = u16::from_be_bytes([b[p+2], b[p+3]]) as usize; eprintln!("marker {m:02X} len {l} {:?}", String::from_utf8_lossy(&b[p+4..(p+4+l.min(14)-2).min(b.len())])); if m == 0xDA { break; } p += 2 + l; }
}

#[test]
fn cmyk_corners() {
    let i = image::load_from_memory(&sample!("testdata/pil_sample_cmyk.jpg")).unwrap().to_rgb8();
    for (x, y) in [(0, 0), (1, 1), (3, 2), (99, 99), (0, 99), (99, 0), (30, 50)] { eprintln!("{x},{y}: {:?}", i.get_pixel(x, y).0); }
}
