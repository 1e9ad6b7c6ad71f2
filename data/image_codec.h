#pragma once
// data/image_codec.h: JPEG (libjpeg-turbo's TurboJPEG API) and PNG (libpng) decoding to 8-bit
// RGB, matching PIL's `Image.open(f).convert('RGB')` pixel for pixel (same libjpeg-turbo, same
// IDCT and upsampling; PNG samples taken as stored, no gamma or colour management).
//
// Every function is thread-safe: each call has its own decoder state, nothing is shared.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/torch_fwd.h"

namespace oodt {

enum class ImageFormat { Unknown, Jpeg, Png };

// By magic bytes (JPEG: FF D8 FF; PNG: the 8-byte signature).
ImageFormat sniff_image(const uint8_t* data, size_t size);

struct ImageInfo {
  ImageFormat format = ImageFormat::Unknown;
  int64_t height = 0, width = 0;
  int channels = 0;   // as stored: 1 gray (or palette index), 2 gray+alpha, 3 RGB/YCbCr, 4 RGBA or CMYK/YCCK
  int bit_depth = 8;  // 8 or 16 (PNG; 1, 2 and 4-bit PNGs report their own depth)
  std::string color;  // "gray", "rgb", "rgba", "cmyk", "ycck", "palette", "gray+alpha"
};

// Header only (cheap: JPEG markers up to the first scan, PNG chunks up to the first IDAT).
// DataError "<what>: <reason>" when not a readable JPEG/PNG header. Does not apply the size
// limit of decode_image: it reports what the header says.
ImageInfo probe_image(const uint8_t* data, size_t size, const std::string& what);

// Full decode to uint8 [H, W, 3] contiguous RGB.
//  - Gray is replicated to three channels; palette expanded; 1/2/4-bit gray scaled to 0..255.
//  - Alpha (RGBA, gray+alpha, palette or gray/RGB tRNS) is dropped, not composited: the colour
//    samples come out as stored, as PIL's convert('RGB') gives them.
//  - 16-bit PNG samples keep their high byte (v >> 8, truncating, not rounding): what PIL does
//    for 16-bit RGB(A). PIL's convert('RGB') of 16-bit gray (mode 'I') clips to 255 instead;
//    not followed.
//  - CMYK and YCCK JPEGs: the stored values are taken as Adobe-inverted (as PIL always does,
//    and as Photoshop and PIL write them), then converted with PIL's formula
//    R = (255 - K) - round(C * (255 - K) / 255), likewise G from M and B from Y.
//  - No EXIF orientation, no ICC profile, no PNG gamma (PIL's convert applies none either).
// `min_height` / `min_width` > 0 allow JPEG DCT scaling: the smallest libjpeg-turbo scaling
// factor <= 1 whose output is still >= both minimums (a minimum <= 0 does not constrain), so a
// later resize only shrinks. PNG ignores them.
// Errors, all DataError "<what>: <reason>": empty or unknown data, truncated or corrupt data
// (any libjpeg-turbo warning counts: a truncated JPEG would otherwise come back padded with
// gray; a PNG CRC error in a critical chunk, a missing IEND), more than 2^28 pixels (checked
// from the header before any allocation), progressive JPEGs with over 500 scans.
at::Tensor decode_image(const uint8_t* data, size_t size, const std::string& what, int64_t min_height = 0,
                        int64_t min_width = 0);

}  // namespace oodt
