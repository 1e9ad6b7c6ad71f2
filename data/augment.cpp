#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "core/random.h"
#include "core/seed.h"
#include "data/augment_u8.h"

namespace oodt {
namespace aug {
namespace {

// Each op below follows torchvision 0.14's functional_tensor.py statement by statement, with
// the same ATen ops in the same order, so the float intermediates round the same way and the
// final casts (truncating `.to(uint8)` or `round()` first) land on the same bytes.

void check_image(const at::Tensor& img, const char* op) {
  OODT_CHECK(img.dim() == 3 || img.dim() == 4, op, ": expected an image [C, H, W] or a batch [N, C, H, W], got ",
             img.dim(), " dimensions");
  OODT_CHECK(img.scalar_type() == at::kByte || img.scalar_type() == at::kFloat, op,
             ": expected uint8 or float32 pixels, got ", img.scalar_type());
}

void check_channels(const at::Tensor& img, const char* op) {
  check_image(img, op);
  const int64_t c = img.size(-3);
  OODT_CHECK(c == 1 || c == 3, op, ": expected 1 or 3 channels, got ", c);
}

// A uint8 [C, H, W] image the per-pixel loops of data/augment_u8.h can run on (a copy of it:
// the ops return new tensors, as torchvision's do). Batches and float images take the tensor
// path below, which is the reference the loops are tested against.
bool planar_u8(const at::Tensor& img) { return img.dim() == 3 && img.scalar_type() == at::kByte; }

// How ATen's antialiased kernel rounds the terms of its sums on this machine, per pass (see
// u8::resize_aa); found = false: no model reproduced it, and ATen resizes every image.
struct ResizeModel {
  bool found = false;
  int block_w = 1, block_h = 1;
};
const ResizeModel& resize_model();
at::Tensor resize_with_aten(const at::Tensor& img, int64_t h, int64_t w, bool antialias);

template <typename Op>
at::Tensor on_copy(const at::Tensor& img, Op op) {
  at::Tensor out = img.contiguous().clone();
  op(out.data_ptr<uint8_t>(), out.size(0), out.size(1) * out.size(2));
  return out;
}

// `ratio * img1 + (1 - ratio) * img2`, clamped to the dtype's range and cast back (for uint8 a
// truncation toward zero, as `.to(torch.uint8)`).
at::Tensor blend(const at::Tensor& img1, const at::Tensor& img2, double ratio) {
  const double bound = img1.is_floating_point() ? 1.0 : 255.0;
  return img1.mul(ratio).add(img2.mul(1.0 - ratio)).clamp(0.0, bound).to(img1.scalar_type());
}

// Python's round() of a non-negative d / 2: half to even.
int64_t half_round_even(int64_t d) {
  if (d % 2 == 0) return d / 2;
  const int64_t lo = (d - 1) / 2;
  return lo % 2 == 0 ? lo : lo + 1;
}

// Python's int(round(x)): half to even (nearbyint under the default rounding mode).
int64_t round_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

// torchvision's _rgb2hsv, returning the planes (h, s, v) unstacked.
std::array<at::Tensor, 3> rgb2hsv(const at::Tensor& img) {
  const auto rgb = img.unbind(-3);
  const at::Tensor &r = rgb[0], &g = rgb[1], &b = rgb[2];
  // torch.max / torch.min over the channel dim; elementwise maximum/minimum pick the same
  // values and are several times faster than a reduction over a leading dim.
  const at::Tensor maxc = at::maximum(at::maximum(r, g), b);
  const at::Tensor minc = at::minimum(at::minimum(r, g), b);
  // Where max == min the hue and saturation are 0; the divisors become 1 there to avoid NaN.
  const at::Tensor eqc = maxc.eq(minc);
  const at::Tensor cr = maxc.sub(minc);
  const at::Tensor ones = at::ones_like(maxc);
  const at::Tensor s = cr.div(at::where(eqc, ones, maxc));
  const at::Tensor cr_divisor = at::where(eqc, ones, cr);
  const at::Tensor rc = maxc.sub(r).div(cr_divisor);
  const at::Tensor gc = maxc.sub(g).div(cr_divisor);
  const at::Tensor bc = maxc.sub(b).div(cr_divisor);
  const at::Tensor hr = maxc.eq(r).mul(bc.sub(gc));
  const at::Tensor hg = maxc.eq(g).logical_and(maxc.ne(r)).mul(rc.add(2.0).sub(bc));
  const at::Tensor hb = maxc.ne(g).logical_and(maxc.ne(r)).mul(gc.add(4.0).sub(rc));
  const at::Tensor h = at::fmod(hr.add(hg).add(hb).div(6.0).add(1.0), 1.0);
  return {h, s, maxc};
}

// torchvision's _hsv2rgb on the planes h, s, v.
at::Tensor hsv2rgb(const at::Tensor& h, const at::Tensor& s, const at::Tensor& v) {
  const at::Tensor i_float = at::floor(h.mul(6.0));
  const at::Tensor f = h.mul(6.0).sub(i_float);
  const at::Tensor i = i_float.to(at::kInt).remainder(6);
  const at::Tensor p = at::clamp(v.mul(at::rsub(s, 1.0)), 0.0, 1.0);
  const at::Tensor q = at::clamp(v.mul(at::rsub(s.mul(f), 1.0)), 0.0, 1.0);
  const at::Tensor t = at::clamp(v.mul(at::rsub(s.mul(at::rsub(f, 1.0)), 1.0)), 0.0, 1.0);
  // torchvision picks each channel's value by sector with a one-hot einsum over
  // (v, q, p, p, t, v), (t, v, v, q, p, p) and (p, p, t, v, v, q); a gather from (v, q, p, t)
  // selects the same element exactly (the einsum only adds zeros to it).
  static const int64_t kPlane[3][6] = {{0, 1, 2, 2, 3, 0}, {3, 0, 0, 1, 2, 2}, {2, 2, 3, 0, 0, 1}};
  const at::Tensor lut = at::from_blob(const_cast<int64_t*>(&kPlane[0][0]), {3, 6}, at::kLong).to(i.device());
  // lut[c][i] for every pixel, as [..., 3, H, W] plane indices.
  std::vector<int64_t> shape{3};
  for (int64_t d : i.sizes()) shape.push_back(d);
  const at::Tensor index = lut.index_select(1, i.to(at::kLong).flatten()).view(shape).movedim(0, -3);
  return at::stack({v, q, p, t}, -3).gather(-3, index);
}

}  // namespace

at::Tensor resize(const at::Tensor& img, int64_t h, int64_t w, bool antialias) {
  check_image(img, "resize");
  OODT_CHECK(h > 0 && w > 0, "resize: the output size must be positive, got ", h, "x", w);
  if (img.size(-2) == h && img.size(-1) == w) return img;
  const ResizeModel& model = resize_model();
  if (antialias && model.found && planar_u8(img) && img.stride(2) == 1) {
    // One uint8 image (any window of a planar one): data/augment_u8.h's loop, the same bytes.
    at::Tensor out = at::empty({img.size(0), h, w}, img.options());
    u8::resize_aa(img.data_ptr<uint8_t>(), img.size(0), img.stride(0), img.stride(1), img.size(1), img.size(2), h, w,
                  out.data_ptr<uint8_t>(), model.block_w, model.block_h);
    return out;
  }
  return resize_with_aten(img, h, w, antialias);
}

std::string resize_kernel() {
  const ResizeModel& m = resize_model();
  return m.found ? concat("loop (term blocks ", m.block_w, " wide, ", m.block_h, " high)") : "aten";
}

namespace {
at::Tensor resize_with_aten(const at::Tensor& img, int64_t h, int64_t w, bool antialias) {
  // The interpolation runs in float32 on a batch; integer images are rounded back.
  at::Tensor x = img.dim() == 3 ? img.unsqueeze(0) : img;
  const bool cast = x.scalar_type() != at::kFloat;
  if (cast) x = x.to(at::kFloat);
  x = antialias ? at::_upsample_bilinear2d_aa(x, {h, w}, /*align_corners=*/false)
                : at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
  if (img.dim() == 3) x = x.squeeze(0);
  if (cast) x = x.round().to(img.scalar_type());
  return x;
}

const ResizeModel& resize_model() {
  // Which terms ATen's float kernel fuses into multiply-adds is a property of its build (the
  // AVX2 kernels of x86 builds are compiled with contraction, and the compiler vectorised the
  // products of the width pass's loop in blocks) and of the CPU it runs on. Ask it once: resize
  // a test image in one direction at a time, over sizes whose sums have 2 to 12 terms, and
  // keep the model that gives every byte ATen gives.
  static const ResizeModel model = [] {
    ResizeModel m;
    const at::Tensor img =
        at::arange(3 * 97 * 89, at::kLong).mul(int64_t{2654435761}).remainder(251).to(at::kByte).view({3, 97, 89});
    const at::Tensor window = img.narrow(1, 3, 90).narrow(2, 2, 80);
    const std::vector<int64_t> sizes{224, 150, 61, 37, 23, 13, 7};
    std::vector<int> blocks{1};
    if (u8::detail::have_fma()) blocks.insert(blocks.end(), {0, 4, 8, 2, 16});
    auto matches = [&](bool width, int block) {
      for (const int64_t n : sizes) {
        const int64_t oh = width ? 90 : n, ow = width ? n : 80;
        const at::Tensor want = resize_with_aten(window, oh, ow, true);
        at::Tensor got = at::empty_like(want);
        u8::resize_aa(window.data_ptr<uint8_t>(), 3, window.stride(0), window.stride(1), 90, 80, oh, ow,
                      got.data_ptr<uint8_t>(), width ? block : 1, width ? 1 : block);
        if (!got.equal(want)) return false;
      }
      return true;
    };
    bool found_w = false, found_h = false;
    for (const int b : blocks)
      if (!found_w && matches(true, b)) found_w = true, m.block_w = b;
    for (const int b : blocks)
      if (!found_h && matches(false, b)) found_h = true, m.block_h = b;
    m.found = found_w && found_h;
    return m;
  }();
  return model;
}
}  // namespace

at::Tensor crop(const at::Tensor& img, int64_t top, int64_t left, int64_t h, int64_t w) {
  check_image(img, "crop");
  OODT_CHECK(h > 0 && w > 0, "crop: the crop size must be positive, got ", h, "x", w);
  const int64_t H = img.size(-2), W = img.size(-1);
  if (top >= 0 && left >= 0 && top + h <= H && left + w <= W)
    return img.narrow(-2, top, h).narrow(-1, left, w);
  // Partly outside: the part inside, zero-padded (torchvision pads with fill 0).
  std::vector<int64_t> shape = img.sizes().vec();
  shape[shape.size() - 2] = h;
  shape[shape.size() - 1] = w;
  at::Tensor out = at::zeros(shape, img.options());
  const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min(top + h, H);
  const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min(left + w, W);
  if (y1 > y0 && x1 > x0) {
    out.narrow(-2, y0 - top, y1 - y0)
        .narrow(-1, x0 - left, x1 - x0)
        .copy_(img.narrow(-2, y0, y1 - y0).narrow(-1, x0, x1 - x0));
  }
  return out;
}

at::Tensor center_crop(const at::Tensor& img, int64_t h, int64_t w) {
  check_image(img, "center_crop");
  OODT_CHECK(h > 0 && w > 0, "center_crop: the crop size must be positive, got ", h, "x", w);
  const int64_t H = img.size(-2), W = img.size(-1);
  // torchvision first pads a too-small side symmetrically (the extra pixel after), which puts
  // the image at offset (crop - size) / 2 rounded down; the padded side then needs no offset.
  const int64_t top = h > H ? -((h - H) / 2) : half_round_even(H - h);
  const int64_t left = w > W ? -((w - W) / 2) : half_round_even(W - w);
  return crop(img, top, left, h, w);
}

at::Tensor resized_crop(const at::Tensor& img, int64_t top, int64_t left, int64_t h, int64_t w, int64_t out_h,
                        int64_t out_w, bool antialias) {
  return resize(crop(img, top, left, h, w), out_h, out_w, antialias);
}

at::Tensor hflip(const at::Tensor& img) {
  check_image(img, "hflip");
  return img.flip(-1);
}

at::Tensor adjust_brightness(const at::Tensor& img, double factor) {
  check_channels(img, "adjust_brightness");
  OODT_CHECK(factor >= 0, "adjust_brightness: the factor must be >= 0, got ", factor);
  if (planar_u8(img))
    return on_copy(img, [&](uint8_t* p, int64_t c, int64_t hw) { u8::brightness(p, c, hw, factor); });
  // torchvision blends with zeros_like(img); adding (1 - factor) * 0 changes no value.
  const double bound = img.is_floating_point() ? 1.0 : 255.0;
  return img.mul(factor).clamp(0.0, bound).to(img.scalar_type());
}

at::Tensor adjust_contrast(const at::Tensor& img, double factor) {
  check_channels(img, "adjust_contrast");
  OODT_CHECK(factor >= 0, "adjust_contrast: the factor must be >= 0, got ", factor);
  if (planar_u8(img))
    return on_copy(img, [&](uint8_t* p, int64_t c, int64_t hw) { u8::contrast(p, c, hw, factor); });
  const at::Tensor gray = img.size(-3) == 3 ? rgb_to_grayscale(img, 1) : img;
  at::Tensor mean;
  if (img.is_floating_point()) {
    mean = gray.mean({-3, -2, -1}, /*keepdim=*/true);
  } else {
    // torchvision takes the float32 mean of the uint8 grayscale image. That sum of integers is
    // exact in float32 below 2^24 (every image up to 256 x 256), whatever the summation order,
    // so summing exactly in int64 gives the same mean, and one that does not depend on how
    // ATen splits a large reduction over threads (a resumed run may use another thread count).
    const int64_t n = gray.size(-1) * gray.size(-2) * gray.size(-3);
    mean = gray.sum({-3, -2, -1}, /*keepdim=*/true, at::kLong).to(at::kFloat).div(n);
  }
  return blend(img, mean, factor);
}

at::Tensor adjust_saturation(const at::Tensor& img, double factor) {
  check_channels(img, "adjust_saturation");
  OODT_CHECK(factor >= 0, "adjust_saturation: the factor must be >= 0, got ", factor);
  if (img.size(-3) == 1) return img;
  if (planar_u8(img))
    return on_copy(img, [&](uint8_t* p, int64_t c, int64_t hw) { u8::saturation(p, c, hw, factor); });
  return blend(img, rgb_to_grayscale(img, 1), factor);
}

at::Tensor adjust_hue(const at::Tensor& img, double hue_factor) {
  check_channels(img, "adjust_hue");
  OODT_CHECK(hue_factor >= -0.5 && hue_factor <= 0.5, "adjust_hue: the factor must be in [-0.5, 0.5], got ",
             hue_factor);
  if (img.size(-3) == 1) return img;
  if (planar_u8(img))
    return on_copy(img, [&](uint8_t* p, int64_t c, int64_t hw) { u8::hue(p, c, hw, hue_factor); });
  const bool is_uint8 = img.scalar_type() == at::kByte;
  const at::Tensor x = is_uint8 ? img.to(at::kFloat).div(255.0) : img;
  const auto hsv = rgb2hsv(x);
  const at::Tensor h = hsv[0].add(hue_factor).remainder(1.0);
  const at::Tensor out = hsv2rgb(h, hsv[1], hsv[2]);
  return is_uint8 ? out.mul(255.0).to(at::kByte) : out;
}

at::Tensor rgb_to_grayscale(const at::Tensor& img, int64_t out_channels) {
  check_channels(img, "rgb_to_grayscale");
  OODT_CHECK(out_channels == 1 || out_channels == 3, "rgb_to_grayscale: out_channels must be 1 or 3, got ",
             out_channels);
  // A 1-channel image stays 1 channel, as in torchvision (its expand is to the input's shape).
  if (img.size(-3) == 1) return img.clone();
  const auto rgb = img.unbind(-3);
  const at::Tensor gray =
      rgb[0].mul(0.2989).add(rgb[1].mul(0.587)).add(rgb[2].mul(0.114)).to(img.scalar_type()).unsqueeze(-3);
  return out_channels == 3 ? gray.expand(img.sizes()) : gray;
}

namespace {
// Normalize's mean and std as two 1-D tensors of `c` values in `dtype` on the CPU: 1 value or
// one per channel each, every value rounded once from double (as torch.as_tensor(values,
// dtype=...)), and no std that is zero in `dtype`. Shared by normalize() and the fused
// ToTensor + Normalize pass of AugmentPipeline::finish().
std::pair<at::Tensor, at::Tensor> mean_std_per_channel(const std::vector<double>& mean,
                                                       const std::vector<double>& std, int64_t c,
                                                       at::ScalarType dtype) {
  OODT_CHECK((mean.size() == 1 || static_cast<int64_t>(mean.size()) == c) &&
                 (std.size() == 1 || static_cast<int64_t>(std.size()) == c),
             "normalize: mean and std need 1 or ", c, " values each, got ", mean.size(), " and ", std.size());
  const at::Tensor m = at::tensor(mean, at::kDouble).to(dtype).expand({c}).contiguous();
  const at::Tensor s = at::tensor(std, at::kDouble).to(dtype).expand({c}).contiguous();
  OODT_CHECK(!s.eq(0).any().item<bool>(), "normalize: a std value is zero in ", dtype);
  return {m, s};
}
}  // namespace

at::Tensor normalize(const at::Tensor& img, const std::vector<double>& mean, const std::vector<double>& std) {
  check_image(img, "normalize");
  OODT_CHECK(img.is_floating_point(), "normalize: expected a float image, got ", img.scalar_type());
  const auto [m, s] = mean_std_per_channel(mean, std, img.size(-3), img.scalar_type());
  return img.sub(m.to(img.device()).view({-1, 1, 1})).div(s.to(img.device()).view({-1, 1, 1}));
}

// --- randomness ---------------------------------------------------------------------------

namespace {
constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
// splitmix64's output function.
uint64_t finalise(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t step, int64_t rank, int64_t sample) {
  constexpr uint64_t kSalt = 0x6175676d656e7421ULL;  // "augment!"
  return mix_seed(seed ^ kSalt, static_cast<uint64_t>(step), static_cast<uint64_t>(rank),
                  static_cast<uint64_t>(sample));
}

Rng::Rng(uint64_t seed) : key_(mix_seed(seed)) {}

uint64_t Rng::next() { return finalise(key_ + (++counter_) * kGamma); }

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double Rng::uniform(double a, double b) { return a + (b - a) * uniform(); }

int64_t Rng::randint(int64_t lo, int64_t hi) {
  OODT_CHECK(hi > lo, "Rng::randint: empty range [", lo, ", ", hi, ")");
  return lo + static_cast<int64_t>(uniform_below([this] { return next(); }, static_cast<uint64_t>(hi - lo)));
}

bool Rng::bernoulli(double p) { return uniform() < p; }

std::array<int, 4> Rng::permutation4() {
  std::array<int, 4> a{0, 1, 2, 3};
  for (int i = 3; i > 0; --i) std::swap(a[i], a[randint(0, i + 1)]);
  return a;
}

Rng Rng::split(uint64_t tag) const { return Rng(mix_seed(key_, tag, 0x73706c6974ULL)); }

CropBox random_resized_crop_params(int64_t h, int64_t w, double scale_lo, double scale_hi, double ratio_lo,
                                   double ratio_hi, Rng& rng) {
  OODT_CHECK(h > 0 && w > 0, "random_resized_crop_params: empty image ", h, "x", w);
  OODT_CHECK(scale_lo > 0 && scale_lo <= scale_hi && ratio_lo > 0 && ratio_lo <= ratio_hi,
             "random_resized_crop_params: bad scale [", scale_lo, ", ", scale_hi, "] or ratio [", ratio_lo, ", ",
             ratio_hi, "]");
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_lo = std::log(ratio_lo), log_hi = std::log(ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale_lo, scale_hi);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t cw = round_even(std::sqrt(target_area * aspect));
    const int64_t ch = round_even(std::sqrt(target_area / aspect));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      const int64_t top = rng.randint(0, h - ch + 1);
      const int64_t left = rng.randint(0, w - cw + 1);
      return {top, left, ch, cw};
    }
  }
  // No attempt fitted: the centred crop of the whole image, narrowed to the ratio range.
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < ratio_lo) {
    ch = round_even(static_cast<double>(cw) / ratio_lo);
  } else if (in_ratio > ratio_hi) {
    cw = round_even(static_cast<double>(ch) * ratio_hi);
  }
  return {(h - ch) / 2, (w - cw) / 2, ch, cw};
}

}  // namespace aug

// --- options ------------------------------------------------------------------------------

namespace {
const std::vector<double> kImagenetMean{0.485, 0.456, 0.406}, kImagenetStd{0.229, 0.224, 0.225};
// OpenAI CLIP's preprocessing constants.
const std::vector<double> kClipMean{0.48145466, 0.4578275, 0.40821073}, kClipStd{0.26862954, 0.26130258, 0.27577711};

void set_normalize(AugmentOptions& o, const std::string& name) {
  o.normalize = name;
  if (name == "imagenet") o.mean = kImagenetMean, o.std = kImagenetStd;
  else if (name == "clip") o.mean = kClipMean, o.std = kClipStd;
  else o.mean.clear(), o.std.clear();
}

bool is_off(const YAML::Node& n) { return !n.IsDefined() || n.IsNull(); }

// A switchable section (`key: false` or `key: {...}`): whether it is on. Absent: `preset_on`.
// `true` means on with the defaults. When on, the node is left a map for cfg.child().
bool section_on(ConfigReader& cfg, const std::string& key, bool preset_on) {
  YAML::Node node = cfg.node();
  const YAML::Node n = cfg.raw(key);
  bool on = preset_on;
  if (!is_off(n)) {
    if (n.IsMap()) return true;
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value))
      cfg.fail(key, concat("expected false (off), true (on, with the defaults) or a map of settings, got ",
                           n.IsSequence() ? "a list" : "'" + n.Scalar() + "'"));
    on = value;
  }
  if (on) node[key] = YAML::Node(YAML::NodeType::Map);
  else node[key] = false;
  return on;
}

// A [lo, hi] pair.
std::pair<double, double> read_range(ConfigReader& cfg, const std::string& key, double lo, double hi) {
  const auto v = cfg.get<std::vector<double>>(key, {lo, hi});
  cfg.check(v.size() == 2, key, concat("expected [lo, hi], got ", v.size(), " values"));
  cfg.check(std::isfinite(v[0]) && std::isfinite(v[1]) && v[0] <= v[1], key,
            concat("expected [lo, hi] with lo <= hi, got [", v[0], ", ", v[1], "]"));
  return {v[0], v[1]};
}

double read_probability(ConfigReader& cfg, const std::string& key, double fallback) {
  const double p = cfg.get<double>(key, fallback);
  cfg.check(p >= 0 && p <= 1, key, concat("must be a probability in [0, 1], got ", p));
  return p;
}

// A ColorJitter amount: >= 0, and at most `max` when given (the hue's 0.5).
double read_jitter(ConfigReader& cfg, const std::string& key, double fallback, double max = 0) {
  const double v = cfg.get<double>(key, fallback);
  if (max > 0) cfg.check(v >= 0 && v <= max, key, concat("must be in [0, ", max, "], got ", v));
  else cfg.check(v >= 0 && std::isfinite(v), key, concat("must be a number >= 0, got ", v));
  return v;
}
}  // namespace

AugmentOptions AugmentOptions::preset_options(const std::string& preset) {
  AugmentOptions o;
  o.preset = preset;
  if (preset == "domainbed") {
    // DomainBed's datasets.py: RandomResizedCrop(224, scale=(0.7, 1.0)), RandomHorizontalFlip(),
    // ColorJitter(0.3, 0.3, 0.3, 0.3), RandomGrayscale() (p 0.1), ImageNet Normalize; eval
    // Resize((224, 224)) and the same Normalize.
    o.size = 224;
    o.random_resized_crop = true;
    o.scale_lo = 0.7, o.scale_hi = 1.0;
    o.hflip = 0.5;
    o.brightness = o.contrast = o.saturation = o.hue = 0.3;
    o.grayscale = 0.1;
    o.eval_resize = "square";
    set_normalize(o, "imagenet");
  } else {
    OODT_CHECK(preset == "none", "unknown augmentation preset '", preset, "'");
  }
  return o;
}

AugmentOptions AugmentOptions::from_config(ConfigReader& cfg) {
  AugmentOptions o = preset_options(cfg.one_of("preset", "none", {"none", "domainbed"}));
  o.size = cfg.get<int64_t>("size", o.size);
  cfg.check(o.size >= 0, "size", concat("must be >= 0 (0: keep the stored size), got ", o.size));

  o.random_resized_crop = section_on(cfg, "random_resized_crop", o.random_resized_crop);
  if (o.random_resized_crop) {
    ConfigReader c = cfg.child("random_resized_crop");
    std::tie(o.scale_lo, o.scale_hi) = read_range(c, "scale", o.scale_lo, o.scale_hi);
    c.check(o.scale_lo > 0 && o.scale_hi <= 1, "scale",
            concat("the area fractions must be in (0, 1], got [", o.scale_lo, ", ", o.scale_hi, "]"));
    std::tie(o.ratio_lo, o.ratio_hi) = read_range(c, "ratio", o.ratio_lo, o.ratio_hi);
    c.check(o.ratio_lo > 0, "ratio", concat("aspect ratios must be positive, got [", o.ratio_lo, ", ", o.ratio_hi, "]"));
    c.finish();
    cfg.check(o.size > 0, "size", "random_resized_crop needs an output size > 0");
  }
  o.hflip = read_probability(cfg, "hflip", o.hflip);

  const bool jitter_on = o.brightness > 0 || o.contrast > 0 || o.saturation > 0 || o.hue > 0;
  if (section_on(cfg, "color_jitter", jitter_on)) {
    ConfigReader c = cfg.child("color_jitter");
    o.brightness = read_jitter(c, "brightness", o.brightness);
    o.contrast = read_jitter(c, "contrast", o.contrast);
    o.saturation = read_jitter(c, "saturation", o.saturation);
    o.hue = read_jitter(c, "hue", o.hue, 0.5);
    c.finish();
  } else {
    o.brightness = o.contrast = o.saturation = o.hue = 0;
  }
  o.grayscale = read_probability(cfg, "grayscale", o.grayscale);

  o.eval_resize = cfg.one_of("eval_resize", o.eval_resize, {"square", "shorter_side"});
  o.crop_pct = cfg.get<double>("crop_pct", o.crop_pct);
  cfg.check(o.crop_pct > 0 && o.crop_pct <= 1, "crop_pct", concat("must be in (0, 1], got ", o.crop_pct));
  o.antialias = cfg.get<bool>("antialias", o.antialias);

  const YAML::Node norm = cfg.raw("normalize");
  if (!is_off(norm) && norm.IsMap()) {
    ConfigReader c = cfg.child("normalize");
    o.normalize = "custom";
    o.mean = c.require<std::vector<double>>("mean");
    o.std = c.require<std::vector<double>>("std");
    c.check(o.mean.size() == 1 || o.mean.size() == 3, "mean", concat("expected 1 or 3 values, got ", o.mean.size()));
    c.check(o.std.size() == 1 || o.std.size() == 3, "std", concat("expected 1 or 3 values, got ", o.std.size()));
    for (double s : o.std) c.check(s > 0 && std::isfinite(s), "std", concat("values must be positive, got ", s));
    for (double m : o.mean) c.check(std::isfinite(m), "mean", "values must be finite numbers");
    c.finish();
  } else {
    set_normalize(o, cfg.one_of("normalize", o.normalize, {"none", "imagenet", "clip"}));
  }
  cfg.finish();
  return o;
}

// --- pipeline -----------------------------------------------------------------------------

namespace {
// The sub-streams of one sample's Rng, one per op.
enum : uint64_t { kStreamCrop = 1, kStreamFlip = 2, kStreamJitter = 3, kStreamGray = 4 };
}  // namespace

AugmentPipeline::AugmentPipeline(AugmentOptions o) : o_(std::move(o)) {
  OODT_CHECK(o_.size >= 0, "augment: size must be >= 0");
  OODT_CHECK(!o_.random_resized_crop || o_.size > 0, "augment: random_resized_crop needs a size");
  OODT_CHECK(o_.eval_resize == "square" || o_.eval_resize == "shorter_side", "augment: unknown eval_resize '",
             o_.eval_resize, "'");
  OODT_CHECK(o_.crop_pct > 0 && o_.crop_pct <= 1, "augment: crop_pct must be in (0, 1]");
  OODT_CHECK(o_.hue >= 0 && o_.hue <= 0.5, "augment: hue must be in [0, 0.5]");
  OODT_CHECK(o_.brightness >= 0 && o_.contrast >= 0 && o_.saturation >= 0, "augment: jitter amounts must be >= 0");
  OODT_CHECK(o_.hflip >= 0 && o_.hflip <= 1 && o_.grayscale >= 0 && o_.grayscale <= 1,
             "augment: probabilities must be in [0, 1]");
  OODT_CHECK(!o_.random_resized_crop || (o_.scale_lo > 0 && o_.scale_lo <= o_.scale_hi && o_.scale_hi <= 1 &&
                                         o_.ratio_lo > 0 && o_.ratio_lo <= o_.ratio_hi),
             "augment: bad random_resized_crop scale or ratio");
}

at::Tensor AugmentPipeline::eval_resize(const at::Tensor& chw) const {
  if (o_.size == 0) return chw;
  if (o_.eval_resize == "square") return aug::resize(chw, o_.size, o_.size, o_.antialias);
  // torchvision's Resize(int): the shorter side to `s`, the longer to int(s * long / short).
  const int64_t s = static_cast<int64_t>(std::floor(static_cast<double>(o_.size) / o_.crop_pct));
  const int64_t h = chw.size(-2), w = chw.size(-1);
  const int64_t short_side = std::min(h, w), long_side = std::max(h, w);
  const int64_t l = static_cast<int64_t>(static_cast<double>(s * long_side) / static_cast<double>(short_side));
  const at::Tensor resized = h <= w ? aug::resize(chw, s, l, o_.antialias) : aug::resize(chw, l, s, o_.antialias);
  return aug::center_crop(resized, o_.size, o_.size);
}

at::Tensor AugmentPipeline::finish(const at::Tensor& chw_uint8) const {
  // ToTensor's scaling, then Normalize, in one pass.
  const at::Tensor img = chw_uint8.contiguous();
  const int64_t c = img.size(0), hw = img.size(1) * img.size(2);
  at::Tensor out = at::empty(img.sizes(), img.options().dtype(at::kFloat));
  at::Tensor mean, stdev;  // undefined: ToTensor's scaling only
  if (!o_.mean.empty()) std::tie(mean, stdev) = aug::mean_std_per_channel(o_.mean, o_.std, c, at::kFloat);
  aug::u8::to_float(img.data_ptr<uint8_t>(), c, hw, mean.defined() ? mean.data_ptr<float>() : nullptr,
                    stdev.defined() ? stdev.data_ptr<float>() : nullptr, out.data_ptr<float>());
  return out;
}

namespace {
at::Tensor to_chw(const at::Tensor& rgb_hwc) {
  OODT_CHECK(rgb_hwc.dim() == 3 && (rgb_hwc.size(2) == 3 || rgb_hwc.size(2) == 1),
             "augment: expected a decoded image [H, W, 3] (or [H, W, 1]), got ", rgb_hwc.sizes());
  OODT_CHECK(rgb_hwc.scalar_type() == at::kByte, "augment: expected uint8 pixels, got ", rgb_hwc.scalar_type());
  OODT_CHECK(rgb_hwc.size(0) > 0 && rgb_hwc.size(1) > 0, "augment: empty image ", rgb_hwc.sizes());
  return rgb_hwc.permute({2, 0, 1}).contiguous();
}
}  // namespace

AugmentDraw AugmentPipeline::draw(int64_t h, int64_t w, uint64_t seed) const {
  const aug::Rng rng(seed);
  AugmentDraw d;
  if (o_.random_resized_crop) {
    aug::Rng r = rng.split(kStreamCrop);
    d.crop = true;
    d.box = aug::random_resized_crop_params(h, w, o_.scale_lo, o_.scale_hi, o_.ratio_lo, o_.ratio_hi, r);
  }
  if (o_.hflip > 0) d.flip = rng.split(kStreamFlip).bernoulli(o_.hflip);
  const double amount[4] = {o_.brightness, o_.contrast, o_.saturation, o_.hue};
  if (amount[0] > 0 || amount[1] > 0 || amount[2] > 0 || amount[3] > 0) {
    aug::Rng r = rng.split(kStreamJitter);
    d.order = r.permutation4();
    // ColorJitter's ranges: [max(0, 1 - x), 1 + x] for the factors, [-x, x] for the hue.
    for (int k = 0; k < 4; ++k) {
      if (amount[k] <= 0) continue;
      d.jitter[k] = true;
      d.factor[k] = k == 3 ? r.uniform(-amount[k], amount[k]) : r.uniform(std::max(0.0, 1.0 - amount[k]), 1.0 + amount[k]);
    }
  }
  if (o_.grayscale > 0) d.gray = rng.split(kStreamGray).bernoulli(o_.grayscale);
  return d;
}

at::Tensor AugmentPipeline::apply_draw(const at::Tensor& rgb_hwc, const AugmentDraw& d) const {
  return train_path(to_chw(rgb_hwc), d);
}

at::Tensor AugmentPipeline::train_path(at::Tensor img, const AugmentDraw& d) const {
  const void* input = img.data_ptr();
  img = d.crop ? aug::resized_crop(img, d.box.top, d.box.left, d.box.height, d.box.width, o_.size, o_.size, o_.antialias)
               : eval_resize(img);
  if (d.flip) img = aug::hflip(img);
  // The colour ops run in place on this sample's own copy, one pass each (data/augment_u8.h).
  if (!img.is_contiguous() || img.data_ptr() == input) img = img.contiguous().clone();
  OODT_CHECK(d.factor[0] >= 0 && d.factor[1] >= 0 && d.factor[2] >= 0 && std::abs(d.factor[3]) <= 0.5,
             "augment: jitter factors must be >= 0 and the hue shift in [-0.5, 0.5]");
  uint8_t* px = img.data_ptr<uint8_t>();
  const int64_t c = img.size(0), hw = img.size(1) * img.size(2);
  for (int k : d.order) {
    if (!d.jitter[k]) continue;
    switch (k) {
      case 0: aug::u8::brightness(px, c, hw, d.factor[0]); break;
      case 1: aug::u8::contrast(px, c, hw, d.factor[1]); break;
      case 2: aug::u8::saturation(px, c, hw, d.factor[2]); break;
      default: aug::u8::hue(px, c, hw, d.factor[3]); break;
    }
  }
  if (d.gray) aug::u8::grayscale(px, c, hw);
  return finish(img);
}

at::Tensor AugmentPipeline::apply(const at::Tensor& rgb_hwc, bool train, uint64_t seed) const {
  const at::Tensor chw = to_chw(rgb_hwc);
  if (train) return train_path(chw, draw(chw.size(1), chw.size(2), seed));
  return finish(eval_resize(chw));
}

}  // namespace oodt
