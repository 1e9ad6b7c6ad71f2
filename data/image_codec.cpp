#include "data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace oodt {
namespace {

// Refuses headers that ask for absurd allocations (a 16k x 16k image is 2^28 pixels).
constexpr int64_t kMaxPixels = int64_t(1) << 28;
const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

[[noreturn]] void fail(const std::string& what, const std::string& reason) {
  throw DataError(concat(what, ": ", reason));
}

void check_pixels(const std::string& what, int64_t height, int64_t width) {
  if (height <= 0 || width <= 0) fail(what, concat("image has an empty size ", width, "x", height));
  if (height * width > kMaxPixels)
    fail(what, concat("image of ", width, "x", height, " pixels is over the limit of 2^28 pixels"));
}

// Why sniff_image said Unknown, for the message.
std::string unknown_reason(const uint8_t* data, size_t size) {
  if (size == 0) return "empty file, not an image";
  std::string hex;
  for (size_t i = 0; i < size && i < 4; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%s%02x", i ? " " : "", data[i]);
    hex += b;
  }
  return concat("not a JPEG or PNG image (starts with bytes ", hex, ")");
}

// ---------------------------------------------------------------------------------------------
// JPEG

// A fresh decompressor per call: nothing shared between threads, and no state carried over from
// a failed call (a libjpeg-turbo 2.1.5 handle reused after header errors can misreport the next
// file's header).
class TjDecoder {
 public:
  explicit TjDecoder(const std::string& what) : h_(tjInitDecompress()) {
    if (!h_) fail(what, concat("cannot start the JPEG decoder: ", tjGetErrorStr2(nullptr)));
  }
  ~TjDecoder() { tjDestroy(h_); }
  TjDecoder(const TjDecoder&) = delete;
  TjDecoder& operator=(const TjDecoder&) = delete;
  tjhandle get() const { return h_; }

 private:
  tjhandle h_;
};

struct JpegHeader {
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
};

JpegHeader jpeg_header(tjhandle h, const uint8_t* data, size_t size, const std::string& what) {
  JpegHeader hd;
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &hd.width, &hd.height, &hd.subsamp,
                          &hd.colorspace) != 0)
    fail(what, concat("not a readable JPEG header: ", tjGetErrorStr2(h)));
  // libjpeg-turbo 2.1 returns success without filling anything in when the data ends before a
  // frame header (it takes the file for a tables-only datastream).
  if (hd.width <= 0 || hd.height <= 0)
    fail(what, "not a readable JPEG header: the data ends before the frame header (truncated file?)");
  return hd;
}

// The smallest scaling factor <= 1 whose output still covers both minimums (1/1 when none
// smaller does, or when no minimum is given).
tjscalingfactor pick_scale(int width, int height, int64_t min_height, int64_t min_width) {
  tjscalingfactor best{1, 1};
  if (min_height <= 0 && min_width <= 0) return best;
  int n = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&n);
  for (int i = 0; factors && i < n; ++i) {
    const tjscalingfactor f = factors[i];
    if (f.num > f.denom) continue;  // the list also holds upscaling factors (2/1, 15/8, ...)
    const bool covers = (min_width <= 0 || TJSCALED(width, f) >= min_width) &&
                        (min_height <= 0 || TJSCALED(height, f) >= min_height);
    if (covers && int64_t(f.num) * best.denom < int64_t(best.num) * f.denom) best = f;
  }
  return best;
}

// ISLOW IDCT and fancy upsampling are libjpeg's defaults, which PIL keeps; ACCURATEDCT only
// says so explicitly. STOPONWARNING: libjpeg recovers from truncated or corrupt scans with a
// warning and gray/garbage pixels, which we refuse. LIMITSCANS: at most 500 progressive scans
// (the documented guard against hostile progressive files).
constexpr int kTjFlags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;

[[noreturn]] void fail_tj(tjhandle h, const std::string& what) {
  if (tjGetErrorCode(h) == TJERR_WARNING)
    fail(what, concat("corrupt or truncated JPEG data: ", tjGetErrorStr2(h)));
  fail(what, concat("JPEG decoding failed: ", tjGetErrorStr2(h)));
}

// PIL's MULDIV255: round(a * b / 255) for a, b in 0..255, in integers.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

at::Tensor decode_jpeg(const uint8_t* data, size_t size, const std::string& what, int64_t min_height,
                       int64_t min_width) {
  TjDecoder dec(what);
  const JpegHeader hd = jpeg_header(dec.get(), data, size, what);
  check_pixels(what, hd.height, hd.width);
  const tjscalingfactor sf = pick_scale(hd.width, hd.height, min_height, min_width);
  const int w = TJSCALED(hd.width, sf), h = TJSCALED(hd.height, sf);
  // tjDecompress2 takes the largest factor whose output fits in (w, h); for these (w, h) that
  // output is exactly (w, h).
  at::Tensor out = at::empty({h, w, 3}, at::kByte);
  uint8_t* rgb = out.data_ptr<uint8_t>();
  if (hd.colorspace == TJCS_CMYK || hd.colorspace == TJCS_YCCK) {
    // libjpeg cannot convert CMYK to RGB itself; it hands back the stored (for YCCK: de-YCC'd)
    // CMYK values, which PIL reads as Adobe-inverted ("CMYK;I") and converts as below.
    std::vector<uint8_t> cmyk(size_t(h) * w * 4);
    if (tjDecompress2(dec.get(), data, static_cast<unsigned long>(size), cmyk.data(), w, 0, h, TJPF_CMYK,
                      kTjFlags) != 0)
      fail_tj(dec.get(), what);
    for (size_t i = 0, n = size_t(h) * w; i < n; ++i) {
      const uint8_t* s = &cmyk[4 * i];
      const int nk = s[3];  // 255 - K, K being the inverted stored value
      for (int c = 0; c < 3; ++c) rgb[3 * i + c] = static_cast<uint8_t>(nk - muldiv255(255 - s[c], nk));
    }
  } else if (tjDecompress2(dec.get(), data, static_cast<unsigned long>(size), rgb, w, 0, h, TJPF_RGB, kTjFlags) !=
             0) {
    fail_tj(dec.get(), what);
  }
  return out;
}

ImageInfo probe_jpeg(const uint8_t* data, size_t size, const std::string& what) {
  TjDecoder dec(what);
  const JpegHeader hd = jpeg_header(dec.get(), data, size, what);
  ImageInfo info;
  info.format = ImageFormat::Jpeg;
  info.height = hd.height;
  info.width = hd.width;
  switch (hd.colorspace) {
    case TJCS_GRAY: info.channels = 1, info.color = "gray"; break;
    case TJCS_CMYK: info.channels = 4, info.color = "cmyk"; break;
    case TJCS_YCCK: info.channels = 4, info.color = "ycck"; break;
    default: info.channels = 3, info.color = "rgb"; break;  // TJCS_RGB or TJCS_YCbCr
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// PNG, through libpng's classic API: the simplified png_image API would composite alpha (onto
// the buffer's contents when no background is given, in linear light) and convert 16-bit
// samples through its gamma handling, while PIL drops alpha and takes the high byte.
//
// libpng reports errors by longjmp. A longjmp must not skip C++ destructors, so every libpng
// call that can fail runs inside one of the png_* stage functions below, whose frames hold
// only trivially destructible locals; the C++ objects (the output tensor, the row pointers)
// live in their callers. The error callback copies libpng's message into a plain buffer.

struct PngSource {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
};

void png_error_cb(png_structp png, png_const_charp msg) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

// Warnings (an ancillary chunk's bad CRC, a dubious ICC profile) leave the pixels intact: not
// printed, not fatal.
void png_warning_cb(png_structp, png_const_charp) {}

void png_read_cb(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "unexpected end of data (file truncated)");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

struct PngReader {
  PngSource src{};
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngReader(const uint8_t* data, size_t size) { src.data = data, src.size = size, src.pos = 0; }
  ~PngReader() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
};

// Signature, IHDR and the chunks before the first IDAT.
bool png_stage_header(PngReader* r) {
  r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r->src, png_error_cb, png_warning_cb);
  if (!r->png) {
    std::snprintf(r->src.message, sizeof r->src.message, "cannot start the PNG decoder");
    return false;
  }
  r->info = png_create_info_struct(r->png);
  if (!r->info) {
    std::snprintf(r->src.message, sizeof r->src.message, "cannot start the PNG decoder");
    return false;
  }
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_set_read_fn(r->png, &r->src, png_read_cb);
  png_read_info(r->png, r->info);
  return true;
}

// Transforms to 8-bit RGB. libpng applies them in its own fixed order (expansion first, then
// alpha stripping, 16->8, gray->RGB), whatever order they are requested in.
bool png_stage_transforms(PngReader* r) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  const int color = png_get_color_type(r->png, r->info);
  const int depth = png_get_bit_depth(r->png, r->info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);  // tRNS becomes alpha, stripped below
  if ((color & PNG_COLOR_MASK_COLOR) == 0) {
    if (depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);  // 1 -> 255, 2 -> 85 steps, 4 -> 17 steps
    png_set_gray_to_rgb(r->png);
  }
  if (depth == 16) png_set_strip_16(r->png);  // the high byte; png_set_scale_16 would round
  png_set_strip_alpha(r->png);
  png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);
  return true;
}

// The pixels, then the chunks after them up to IEND (a file cut after its image data fails
// here, like one cut inside it).
bool png_stage_pixels(PngReader* r, png_bytepp rows) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_read_image(r->png, rows);
  png_read_end(r->png, nullptr);
  return true;
}

[[noreturn]] void fail_png(const PngReader& r, const std::string& what) {
  fail(what, concat("PNG decoding failed: ", r.src.message));
}

ImageInfo probe_png(const uint8_t* data, size_t size, const std::string& what) {
  PngReader r(data, size);
  if (!png_stage_header(&r)) fail(what, concat("not a readable PNG header: ", r.src.message));
  ImageInfo info;
  info.format = ImageFormat::Png;
  info.height = png_get_image_height(r.png, r.info);
  info.width = png_get_image_width(r.png, r.info);
  info.channels = png_get_channels(r.png, r.info);
  info.bit_depth = png_get_bit_depth(r.png, r.info);
  switch (png_get_color_type(r.png, r.info)) {
    case PNG_COLOR_TYPE_GRAY: info.color = "gray"; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: info.color = "gray+alpha"; break;
    case PNG_COLOR_TYPE_PALETTE: info.color = "palette"; break;
    case PNG_COLOR_TYPE_RGB: info.color = "rgb"; break;
    default: info.color = "rgba"; break;
  }
  return info;
}

at::Tensor decode_png(const uint8_t* data, size_t size, const std::string& what) {
  PngReader r(data, size);
  if (!png_stage_header(&r)) fail(what, concat("not a readable PNG header: ", r.src.message));
  const int64_t h = png_get_image_height(r.png, r.info), w = png_get_image_width(r.png, r.info);
  check_pixels(what, h, w);
  if (!png_stage_transforms(&r)) fail_png(r, what);
  // What the transforms promise; a mismatch would overrun the rows below.
  if (png_get_channels(r.png, r.info) != 3 || png_get_bit_depth(r.png, r.info) != 8 ||
      png_get_rowbytes(r.png, r.info) != size_t(w) * 3)
    fail(what, "PNG decoding failed: unexpected layout after conversion to 8-bit RGB");
  at::Tensor out = at::empty({h, w, 3}, at::kByte);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[y] = out.data_ptr<uint8_t>() + y * w * 3;
  if (!png_stage_pixels(&r, rows.data())) fail_png(r, what);
  return out;
}

}  // namespace

ImageFormat sniff_image(const uint8_t* data, size_t size) {
  if (!data) return ImageFormat::Unknown;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::Jpeg;
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) return ImageFormat::Png;
  return ImageFormat::Unknown;
}

ImageInfo probe_image(const uint8_t* data, size_t size, const std::string& what) {
  switch (sniff_image(data, size)) {
    case ImageFormat::Jpeg: return probe_jpeg(data, size, what);
    case ImageFormat::Png: return probe_png(data, size, what);
    default: fail(what, unknown_reason(data, data ? size : 0));
  }
}

at::Tensor decode_image(const uint8_t* data, size_t size, const std::string& what, int64_t min_height,
                        int64_t min_width) {
  switch (sniff_image(data, size)) {
    case ImageFormat::Jpeg: return decode_jpeg(data, size, what, min_height, min_width);
    case ImageFormat::Png: return decode_png(data, size, what);
    default: fail(what, unknown_reason(data, data ? size : 0));
  }
}

}  // namespace oodt
