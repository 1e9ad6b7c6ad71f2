// Colour ops of data.augment on one uint8 image, in place, one pass over the pixels each.
//
// Each function computes what the tensor op of the same name in data/augment.h computes for a
// uint8 [C, H, W] image (torchvision 0.14's arithmetic: the same float32 operations in the same
// order, the same truncating casts), so the bytes are identical; tests/data/augment_test.cpp
// checks that against torchvision's fixtures and, for the hue, against the tensor path on every
// one of the 2^24 colours. The tensor path allocates a float tensor per intermediate (about 30
// for the hue); these loops keep one pixel in registers, which is most of the reader's speed.
//
// Images are planar: `channels` planes of `hw` bytes each (C = 1 or 3).
#pragma once

#include <cstdint>

namespace oodt {
namespace aug {
namespace u8 {

// clamp(x * factor, 0, 255), truncated.
void brightness(uint8_t* img, int64_t channels, int64_t hw, double factor);
// Blend with the mean of the grayscale image (the mean as adjust_contrast takes it).
void contrast(uint8_t* img, int64_t channels, int64_t hw, double factor);
// Blend with each pixel's grayscale value; a 1-channel image is left as it is.
void saturation(uint8_t* img, int64_t channels, int64_t hw, double factor);
// RGB -> HSV, hue shifted by `factor` (in [-0.5, 0.5]) modulo 1, HSV -> RGB; 1 channel: no-op.
void hue(uint8_t* img, int64_t channels, int64_t hw, double factor);
// Every plane set to 0.2989 R + 0.587 G + 0.114 B, truncated (3 channels; 1 channel: no-op).
void grayscale(uint8_t* img, int64_t channels, int64_t hw);
// out = (x / 255 - mean[c]) / stdev[c] per plane (ToTensor, then Normalize); mean and stdev null:
// x / 255 only.
void to_float(const uint8_t* img, int64_t channels, int64_t hw, const float* mean, const float* stdev, float* out);

// F.resize(..., BILINEAR, antialias=True) as ATen's float kernel computes it: the width pass,
// then the height pass, each output a sum over its taps in order, then rounded half to even.
// Applied to the h x w window at `src` of each of `channels` uint8 planes (rows `stride` bytes
// apart, planes `plane` bytes apart), written as out_h x out_w planes at `out`.
// How ATen's compiled loop rounds its terms depends on its build and this CPU: block_w and
// block_h say it per pass (B = 1: each product rounded, then added; B = 0: every term a fused
// multiply-add; B > 1: full blocks of B terms rounded twice, the rest fused, as a loop whose
// products were vectorised in blocks of B). data/augment.cpp finds the values by asking ATen.
void resize_aa(const uint8_t* src, int64_t channels, int64_t plane, int64_t stride, int64_t h, int64_t w,
               int64_t out_h, int64_t out_w, uint8_t* out, int block_w, int block_h);

// The hue loop for SSE2 (any x86-64, and other CPUs' 128-bit vectors) and for AVX2; hue()
// picks one at run time. Exposed so that tests check both on any machine with AVX2.
namespace detail {
void hue_portable(uint8_t* r, uint8_t* g, uint8_t* b, int64_t hw, float shift);
void hue_avx2(uint8_t* r, uint8_t* g, uint8_t* b, int64_t hw, float shift);
bool have_avx2();
bool have_fma();  // resize_aa with a block other than 1 needs it
}  // namespace detail

}  // namespace u8
}  // namespace aug
}  // namespace oodt
