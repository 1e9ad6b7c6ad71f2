#include "data/augment_u8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

// Every expression below is one float32 operation of torchvision's tensor code, written in its
// order. No a * b + c may become a fused multiply-add, which would round once where the tensor
// ops round twice: GCC gets -ffp-contract=off from data/CMakeLists.txt, Clang this pragma.
#ifdef __clang__
#pragma clang fp contract(off)
// The vector helpers are always inlined: the ABI of passing 32-byte vectors never applies
// (GCC's copy of this note is silenced in data/CMakeLists.txt).
#pragma clang diagnostic ignored "-Wpsabi"
#endif

namespace oodt {
namespace aug {
namespace u8 {
namespace {

// `.clamp(0, 255).to(torch.uint8)`: the clamp, then a truncating cast.
inline uint8_t clamp_cast(float v) {
  v = std::min(std::max(v, 0.0f), 255.0f);
  return static_cast<uint8_t>(static_cast<int>(v));
}

// rgb_to_grayscale's `(0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8)`.
inline uint8_t gray_of(uint8_t r, uint8_t g, uint8_t b) {
  const float v = static_cast<float>(r) * 0.2989f + static_cast<float>(g) * 0.587f + static_cast<float>(b) * 0.114f;
  return static_cast<uint8_t>(static_cast<int>(v));
}

// `img.to(torch.float32) / 255` for every byte value.
struct Unit {
  float v[256];
  Unit() {
    for (int i = 0; i < 256; ++i) v[i] = static_cast<float>(i) / 255.0f;
  }
};
const Unit& unit() {
  static const Unit u;
  return u;
}

}  // namespace

void brightness(uint8_t* img, int64_t channels, int64_t hw, double factor) {
  const float f = static_cast<float>(factor);
  const int64_t n = channels * hw;
  for (int64_t i = 0; i < n; ++i) img[i] = clamp_cast(static_cast<float>(img[i]) * f);
}

void contrast(uint8_t* img, int64_t channels, int64_t hw, double factor) {
  // The mean as adjust_contrast takes it: an exact integer sum of the grayscale image, then
  // float(sum) / float(n).
  int64_t sum = 0;
  if (channels == 3) {
    const uint8_t *r = img, *g = img + hw, *b = img + 2 * hw;
    for (int64_t i = 0; i < hw; ++i) sum += gray_of(r[i], g[i], b[i]);
  } else {
    for (int64_t i = 0; i < hw; ++i) sum += img[i];
  }
  const float mean = static_cast<float>(sum) / static_cast<float>(hw);
  // blend(img, mean, f): img * f + mean * (1 - f), the second term the same for every pixel.
  const float f = static_cast<float>(factor);
  const float term = mean * static_cast<float>(1.0 - factor);
  const int64_t n = channels * hw;
  for (int64_t i = 0; i < n; ++i) img[i] = clamp_cast(static_cast<float>(img[i]) * f + term);
}

void saturation(uint8_t* img, int64_t channels, int64_t hw, double factor) {
  if (channels != 3) return;
  const float f = static_cast<float>(factor), rest = static_cast<float>(1.0 - factor);
  uint8_t *r = img, *g = img + hw, *b = img + 2 * hw;
  for (int64_t i = 0; i < hw; ++i) {
    const float gray = static_cast<float>(gray_of(r[i], g[i], b[i])) * rest;
    r[i] = clamp_cast(static_cast<float>(r[i]) * f + gray);
    g[i] = clamp_cast(static_cast<float>(g[i]) * f + gray);
    b[i] = clamp_cast(static_cast<float>(b[i]) * f + gray);
  }
}

namespace {

// L pixels at a time with GCC's vector extensions (also Clang's). Comparisons give 0 / -1
// lanes; `m ? a : b` selects lane by lane after computing both sides. Everything is inlined
// into the entry points below, which compile it for SSE2 (L = 4) and, where the CPU has it,
// AVX2 (L = 8); neither enables FMA.
#define OODT_INLINE inline __attribute__((always_inline))

template <int L>
struct Vec {
  typedef float F __attribute__((vector_size(4 * L)));
  typedef int32_t I __attribute__((vector_size(4 * L)));
  typedef uint8_t B __attribute__((vector_size(L)));
};

template <int L>
OODT_INLINE typename Vec<L>::F load_bytes(const uint8_t* p) {
  typename Vec<L>::B b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(__builtin_convertvector(b, typename Vec<L>::I), typename Vec<L>::F);
}

// `(x * 255).to(torch.uint8)` for x in [0, 1]: a truncating conversion.
template <int L>
OODT_INLINE void store_bytes(uint8_t* p, typename Vec<L>::F x) {
  const auto b = __builtin_convertvector(__builtin_convertvector(x * 255.0f, typename Vec<L>::I), typename Vec<L>::B);
  std::memcpy(p, &b, sizeof b);
}

template <typename V>
OODT_INLINE V vmax(V a, V b) {
  return a < b ? b : a;
}
template <typename V>
OODT_INLINE V vmin(V a, V b) {
  return b < a ? b : a;
}

// One block of L pixels, in place.
template <int L>
OODT_INLINE void hue_block(uint8_t* pr, uint8_t* pg, uint8_t* pb, float shift) {
  using VF = typename Vec<L>::F;
  using VI = typename Vec<L>::I;
  const VF zero = VF{} + 0.0f, one = zero + 1.0f;
  // `img.to(torch.float32) / 255`.
  const VF r = load_bytes<L>(pr) / 255.0f, g = load_bytes<L>(pg) / 255.0f, b = load_bytes<L>(pb) / 255.0f;
  // _rgb2hsv.
  const VF maxc = vmax(vmax(r, g), b);
  const VF minc = vmin(vmin(r, g), b);
  const VI eqc = maxc == minc;
  const VF cr = maxc - minc;
  const VF s = cr / (eqc ? one : maxc);
  const VF cr_divisor = eqc ? one : cr;
  const VF rc = (maxc - r) / cr_divisor;
  const VF gc = (maxc - g) / cr_divisor;
  const VF bc = (maxc - b) / cr_divisor;
  // The masks multiply as 0.0 / 1.0 floats, as the bool tensors do.
  const VI is_r = maxc == r, is_g = maxc == g;
  const VF hr = (is_r ? one : zero) * (bc - gc);
  const VF hg = ((is_g & ~is_r) ? one : zero) * (rc + 2.0f - bc);
  const VF hb = ((~is_g & ~is_r) ? one : zero) * (gc + 4.0f - rc);
  // torch.fmod(x, 1.0): x = sum / 6 + 1 lies in [5/6, 11/6], where fmod is x or the exact x - 1.
  VF h = (hr + hg + hb) / 6.0f + 1.0f;
  h = h < one ? h : h - 1.0f;
  // (h + hue_factor) % 1.0 (torch.remainder): the sum lies in [-0.5, 1.5); below 0 the
  // remainder is x + 1 (rounded, as fmod(x, 1) = x there), from 1 on the exact x - 1; -0.0
  // stays as it is, as fmod's zero does.
  VF hs = h + shift;
  hs = hs < zero ? hs + 1.0f : (hs >= one ? hs - 1.0f : hs);
  // _hsv2rgb. hs >= -0.0, so floor is the truncation (for -0.0 it gives +0.0 where floor gives
  // -0.0; f is then +0.0 either way, and so is everything computed from it).
  const VI i = __builtin_convertvector(hs * 6.0f, VI);
  const VF i_float = __builtin_convertvector(i, VF);
  const VF f = hs * 6.0f - i_float;
  // `i % 6`: hs * 6 can round up to 6.0 for hs just below 1.
  const VI sector = i >= 6 ? i - 6 : i;
  const VF v = maxc;
  const VF p = vmin(vmax(v * (1.0f - s), zero), one);
  const VF q = vmin(vmax(v * (1.0f - s * f), zero), one);
  const VF t = vmin(vmax(v * (1.0f - s * (1.0f - f)), zero), one);
  // Each channel's value by sector: R from (v, q, p, p, t, v), G from (t, v, v, q, p, p), B
  // from (p, p, t, v, v, q).
  const VF ro = ((sector == 0) | (sector == 5)) ? v : (sector == 1 ? q : (sector == 4 ? t : p));
  const VF go = sector == 0 ? t : (sector <= 2 ? v : (sector == 3 ? q : p));
  const VF bo = sector <= 1 ? p : (sector == 2 ? t : (sector <= 4 ? v : q));
  store_bytes<L>(pr, ro);
  store_bytes<L>(pg, go);
  store_bytes<L>(pb, bo);
}

template <int L>
OODT_INLINE void hue_planes(uint8_t* r, uint8_t* g, uint8_t* b, int64_t hw, float shift) {
  int64_t i = 0;
  for (; i + L <= hw; i += L) hue_block<L>(r + i, g + i, b + i, shift);
  if (i < hw) {
    // The last few pixels through a padded block.
    uint8_t tail[3][L] = {};
    const auto n = static_cast<size_t>(hw - i);
    std::memcpy(tail[0], r + i, n), std::memcpy(tail[1], g + i, n), std::memcpy(tail[2], b + i, n);
    hue_block<L>(tail[0], tail[1], tail[2], shift);
    std::memcpy(r + i, tail[0], n), std::memcpy(g + i, tail[1], n), std::memcpy(b + i, tail[2], n);
  }
}

}  // namespace

namespace detail {
void hue_portable(uint8_t* r, uint8_t* g, uint8_t* b, int64_t hw, float shift) { hue_planes<4>(r, g, b, hw, shift); }
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) void hue_avx2(uint8_t* r, uint8_t* g, uint8_t* b, int64_t hw, float shift) {
  hue_planes<8>(r, g, b, hw, shift);
}
bool have_avx2() { return __builtin_cpu_supports("avx2"); }
#else
void hue_avx2(uint8_t* r, uint8_t* g, uint8_t* b, int64_t hw, float shift) { hue_portable(r, g, b, hw, shift); }
bool have_avx2() { return false; }
#endif
}  // namespace detail

void hue(uint8_t* img, int64_t channels, int64_t hw, double factor) {
  if (channels != 3) return;
  static const bool avx2 = detail::have_avx2();
  (avx2 ? detail::hue_avx2 : detail::hue_portable)(img, img + hw, img + 2 * hw, hw, static_cast<float>(factor));
}

void grayscale(uint8_t* img, int64_t channels, int64_t hw) {
  if (channels != 3) return;
  uint8_t *r = img, *g = img + hw, *b = img + 2 * hw;
  for (int64_t i = 0; i < hw; ++i) r[i] = g[i] = b[i] = gray_of(r[i], g[i], b[i]);
}

void to_float(const uint8_t* img, int64_t channels, int64_t hw, const float* mean, const float* stdev, float* out) {
  const float* to_unit = unit().v;
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* in = img + c * hw;
    float* o = out + c * hw;
    if (mean == nullptr) {
      for (int64_t i = 0; i < hw; ++i) o[i] = to_unit[in[i]];
    } else {
      // (x - mean) / std for the 256 byte values, looked up.
      float table[256];
      for (int k = 0; k < 256; ++k) table[k] = (to_unit[k] - mean[c]) / stdev[c];
      for (int64_t i = 0; i < hw; ++i) o[i] = table[in[i]];
    }
  }
}

namespace {

// One dimension's taps: output i reads inputs [first[i], first[i] + count[i]) with the weights
// at weight[i * span]. Each line follows ATen's weight computation for the linear filter,
// including where it computes in double before storing to float.
struct Taps {
  std::vector<int64_t> first, count;
  std::vector<float> weight;
  int64_t span = 0;
};

float linear_filter(float x) {
  if (x < 0.0f) x = -x;
  return x < 1.0f ? static_cast<float>(1.0 - x) : 0.0f;
}

Taps aa_taps(int64_t in, int64_t out) {
  Taps t;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? scale : 1.0f;  // (interp_size / 2) * scale, or 1
  const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / scale) : 1.0f;
  t.span = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<size_t>(out));
  t.count.resize(static_cast<size_t>(out));
  t.weight.assign(static_cast<size_t>(out * t.span), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const float center = static_cast<float>(static_cast<double>(scale) * (static_cast<double>(i) + 0.5));
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(static_cast<double>(center - support) + 0.5), 0);
    const int64_t xsize = std::min(static_cast<int64_t>(static_cast<double>(center + support) + 0.5), in) - xmin;
    float* w = &t.weight[static_cast<size_t>(i * t.span)];
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      const float d = static_cast<float>(j + xmin) - center;
      w[j] = linear_filter(static_cast<float>((static_cast<double>(d) + 0.5) * static_cast<double>(invscale)));
      total += w[j];
    }
    if (total != 0.0f)
      for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
    t.first[static_cast<size_t>(i)] = xmin;
    t.count[static_cast<size_t>(i)] = xsize;
  }
  return t;
}

// The j-th term (j >= 1) of a sum over `count` taps: t * w rounded and added, or fused into
// one multiply-add. With `block` = B the first floor((count - 1) / B) * B terms are rounded
// twice and the rest fused (B = 1: none fused; B = 0: all fused).
OODT_INLINE bool fused_term(int64_t j, int64_t count, int block) {
  return block == 0 || j > ((count - 1) / block) * block;
}

template <bool kHaveFma>
OODT_INLINE float multiply_add(float t, float w, float acc, bool fused) {
  if constexpr (kHaveFma) {
    return fused ? std::fma(t, w, acc) : acc + t * w;
  } else {
    return acc + t * w;
  }
}

template <bool kHaveFma>
OODT_INLINE void resize_planes(const uint8_t* src, int64_t channels, int64_t plane, int64_t stride, int64_t h,
                               int64_t w, int64_t out_h, int64_t out_w, uint8_t* out, int block_w, int block_h) {
  const Taps tx = aa_taps(w, out_w), ty = aa_taps(h, out_h);
  // The width pass on blocks of kRows rows: the block's window transposed to columns of kRows
  // floats, so that each output column is kRows independent sums the compiler vectorises.
  constexpr int64_t kRows = 8;
  std::vector<float> tile(static_cast<size_t>(w * kRows));
  std::vector<float> mid(static_cast<size_t>(h * out_w));  // width-resized rows of one plane
  std::vector<float> acc(static_cast<size_t>(out_w));
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* in = src + c * plane;
    for (int64_t y0 = 0; y0 < h; y0 += kRows) {
      const int64_t rows = std::min(kRows, h - y0);
      for (int64_t k = 0; k < kRows; ++k) {
        const uint8_t* row = in + (y0 + std::min(k, rows - 1)) * stride;
        for (int64_t x = 0; x < w; ++x) tile[static_cast<size_t>(x * kRows + k)] = static_cast<float>(row[x]);
      }
      for (int64_t ox = 0; ox < out_w; ++ox) {
        const float* wt = &tx.weight[static_cast<size_t>(ox * tx.span)];
        const float* col = &tile[static_cast<size_t>(tx.first[static_cast<size_t>(ox)] * kRows)];
        const int64_t count = tx.count[static_cast<size_t>(ox)];
        float sum[kRows];
        for (int64_t k = 0; k < kRows; ++k) sum[k] = col[k] * wt[0];
        for (int64_t j = 1; j < count; ++j) {
          const bool fused = fused_term(j, count, block_w);
          for (int64_t k = 0; k < kRows; ++k) sum[k] = multiply_add<kHaveFma>(col[j * kRows + k], wt[j], sum[k], fused);
        }
        for (int64_t k = 0; k < rows; ++k) mid[static_cast<size_t>((y0 + k) * out_w + ox)] = sum[k];
      }
    }
    // The height pass, a row at a time; then round half to even (torch.round) and store.
    uint8_t* o = out + c * out_h * out_w;
    for (int64_t oy = 0; oy < out_h; ++oy) {
      const float* wt = &ty.weight[static_cast<size_t>(oy * ty.span)];
      const float* first = &mid[static_cast<size_t>(ty.first[static_cast<size_t>(oy)] * out_w)];
      const int64_t count = ty.count[static_cast<size_t>(oy)];
      for (int64_t x = 0; x < out_w; ++x) acc[static_cast<size_t>(x)] = first[x] * wt[0];
      for (int64_t j = 1; j < count; ++j) {
        const float* row = first + j * out_w;
        const float wj = wt[j];
        const bool fused = fused_term(j, count, block_h);
        for (int64_t x = 0; x < out_w; ++x)
          acc[static_cast<size_t>(x)] = multiply_add<kHaveFma>(row[x], wj, acc[static_cast<size_t>(x)], fused);
      }
      for (int64_t x = 0; x < out_w; ++x)
        o[oy * out_w + x] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(acc[static_cast<size_t>(x)])));
    }
  }
}

}  // namespace

namespace detail {
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void resize_aa_fma(const uint8_t* src, int64_t channels, int64_t plane,
                                                        int64_t stride, int64_t h, int64_t w, int64_t out_h,
                                                        int64_t out_w, uint8_t* out, int block_w, int block_h) {
  resize_planes<true>(src, channels, plane, stride, h, w, out_h, out_w, out, block_w, block_h);
}
bool have_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
void resize_aa_fma(const uint8_t* src, int64_t channels, int64_t plane, int64_t stride, int64_t h, int64_t w,
                   int64_t out_h, int64_t out_w, uint8_t* out, int block_w, int block_h) {
  resize_planes<true>(src, channels, plane, stride, h, w, out_h, out_w, out, block_w, block_h);
}
bool have_fma() { return true; }
#endif
}  // namespace detail

void resize_aa(const uint8_t* src, int64_t channels, int64_t plane, int64_t stride, int64_t h, int64_t w,
               int64_t out_h, int64_t out_w, uint8_t* out, int block_w, int block_h) {
  if (block_w == 1 && block_h == 1) {
    resize_planes<false>(src, channels, plane, stride, h, w, out_h, out_w, out, 1, 1);
  } else {
    detail::resize_aa_fma(src, channels, plane, stride, h, w, out_h, out_w, out, block_w, block_h);
  }
}

}  // namespace u8
}  // namespace aug
}  // namespace oodt
